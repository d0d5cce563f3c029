"""``generate_world``: run the simulator and write canonical tables plus hidden truth.

Layout under ``out_dir``::

    raw/<table>.parquet          one per features.contracts.raw.TABLES, validated
    raw/_world.json              what produced them (scale, seed, last day, counts)
    truth/true_inventory.parquet true shelf stock; never read by features or training
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from features.contracts.raw import TABLES, validate
from simulation.scales import scale_config
from simulation.simulator import SNAPSHOT_HOUR, Simulator
from simulation.sink import TableSink

MANIFEST = "_world.json"
TRUTH_TABLE = "true_inventory"
#: bump when mechanics change so an old world on disk is not mistaken for a current one
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class WorldSummary:
    """What was generated (or found up to date) and where it lives.

    ``start`` is midnight UTC of the first recorded day; ``end`` is the newest snapshot
    (last day, 23:00 UTC).
    """

    scale: str
    seed: int
    start: datetime
    end: datetime
    days: int
    counts: dict[str, int] = field(hash=False)
    raw_dir: Path
    truth_path: Path
    regenerated: bool

    @property
    def tables(self) -> dict[str, Path]:
        return {name: self.raw_dir / f"{name}.parquet" for name in TABLES}


def history_days(end: datetime | None, days: int) -> list[date]:
    """The ``days`` UTC days ending the day before ``end`` (naive ``end`` is taken as UTC)."""
    end = end or datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    last = end.astimezone(UTC).date() - timedelta(days=1)
    return [last - timedelta(days=days - 1 - i) for i in range(days)]


def world_key(scale: str, seed: int, last_day: date, days: int) -> dict[str, Any]:
    return {
        "scale": scale,
        "seed": seed,
        "last_day": last_day.isoformat(),
        "days": days,
        "version": GENERATOR_VERSION,
    }


def _summary(manifest: dict[str, Any], out_dir: Path, *, regenerated: bool) -> WorldSummary:
    first = date.fromisoformat(manifest["first_day"])
    last = date.fromisoformat(manifest["last_day"])
    return WorldSummary(
        scale=manifest["scale"],
        seed=int(manifest["seed"]),
        start=datetime.combine(first, time(0), tzinfo=UTC),
        end=datetime.combine(last, time(SNAPSHOT_HOUR), tzinfo=UTC),
        days=int(manifest["days"]),
        counts={k: int(v) for k, v in manifest["counts"].items()},
        raw_dir=out_dir / "raw",
        truth_path=out_dir / "truth" / f"{TRUTH_TABLE}.parquet",
        regenerated=regenerated,
    )


def _existing(out_dir: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    path = out_dir / "raw" / MANIFEST
    if not path.exists():
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if any(manifest.get(k) != v for k, v in key.items()):
        return None
    files = [out_dir / "raw" / f"{t}.parquet" for t in TABLES] + [
        out_dir / "truth" / f"{TRUTH_TABLE}.parquet"
    ]
    return manifest if all(f.exists() for f in files) else None


def generate_world(
    out_dir: Path,
    *,
    scale: Literal["small", "medium", "large"] = "small",
    seed: int = 7,
    end: datetime | None = None,
    progress: bool = False,
    days: int | None = None,
) -> WorldSummary:
    """Simulate the network and write its history; a no-op when the same world is on disk.

    ``days`` overrides the scale's horizon (tests use short worlds).
    """
    out_dir = Path(out_dir)
    cfg = scale_config(scale)
    n_days = days if days is not None else cfg.days
    if n_days < 1:
        raise ValueError("days must be at least 1")
    calendar = history_days(end, n_days)
    key = world_key(scale, seed, calendar[-1], n_days)
    found = _existing(out_dir, key)
    if found is not None:
        return _summary(found, out_dir, regenerated=False)

    sim = Simulator(cfg, seed)
    manifest = write_history(sim, calendar, cfg.burn_in_days, out_dir, key, progress=progress)
    return _summary(manifest, out_dir, regenerated=True)


def write_history(
    sim: Simulator,
    calendar: list[date],
    burn_in: int,
    out_dir: Path,
    key: dict[str, Any],
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``sim`` over ``calendar`` (after ``burn_in`` days) and write its tables and manifest.

    The simulator is left at the end of the history, so a backtest can carry on from it.
    """
    raw_dir, truth_dir = out_dir / "raw", out_dir / "truth"
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / MANIFEST).unlink(missing_ok=True)
    n_days = len(calendar)
    sinks = {name: TableSink(name, raw_dir / f"{name}.parquet") for name in TABLES}
    sinks[TRUTH_TABLE] = TableSink(
        TRUTH_TABLE, truth_dir / f"{TRUTH_TABLE}.parquet", canonical=False
    )
    try:
        bar = tqdm(
            sim.run(calendar, burn_in),
            total=n_days,
            desc=f"simulating {key['scale']} world",
            unit="day",
            disable=not progress,
        )
        for day in bar:
            for name, frame in day.frames.items():
                sinks[name].add(frame)
        # capacity is calibrated during burn-in, so static tables are written last
        sinks["nodes"].add(validate("nodes", sim.net.frame()))
        sinks["skus"].add(validate("skus", sim.catalog.frame()))
        for sink in sinks.values():
            sink.close()
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise

    manifest = {
        **key,
        "first_day": calendar[0].isoformat(),
        "counts": {name: sinks[name].rows for name in TABLES},
        "truth_rows": sinks[TRUTH_TABLE].rows,
        "generated_at": datetime.now(UTC).isoformat(),
    }
    (raw_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest
