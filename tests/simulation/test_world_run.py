"""Running ``generate_world``: determinism, idempotency, fresh regeneration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sim_world import END

from features.contracts.raw import TABLES
from simulation import generate_world, history_days
from simulation.world import MANIFEST

SHORT = 6


def _read(root: Path) -> dict[str, pd.DataFrame]:
    frames = {n: pd.read_parquet(root / "raw" / f"{n}.parquet") for n in TABLES}
    frames["truth"] = pd.read_parquet(root / "truth" / "true_inventory.parquet")
    return frames


def test_same_seed_same_tables_other_seed_differs(tmp_path: Path) -> None:
    a = generate_world(tmp_path / "a", seed=5, end=END, days=SHORT)
    b = generate_world(tmp_path / "b", seed=5, end=END, days=SHORT)
    c = generate_world(tmp_path / "c", seed=6, end=END, days=SHORT)
    assert a.counts == b.counts
    fa, fb, fc = _read(tmp_path / "a"), _read(tmp_path / "b"), _read(tmp_path / "c")
    for name in fa:
        pd.testing.assert_frame_equal(fa[name], fb[name], obj=name)
    assert not fa["allocations"].equals(fc["allocations"])
    assert not fa["nodes"]["city"].equals(fc["nodes"]["city"])
    assert c.seed == 6


def test_rerun_is_a_no_op_and_new_end_regenerates(tmp_path: Path) -> None:
    first = generate_world(tmp_path, seed=5, end=END, days=SHORT)
    assert first.regenerated
    stamp = {n: (tmp_path / "raw" / f"{n}.parquet").stat().st_mtime_ns for n in TABLES}
    # a later time on the same UTC day names the same last history day
    again = generate_world(tmp_path, seed=5, end=END.replace(hour=23), days=SHORT)
    assert not again.regenerated
    assert again.counts == first.counts and again.end == first.end
    assert stamp == {n: (tmp_path / "raw" / f"{n}.parquet").stat().st_mtime_ns for n in TABLES}

    later = generate_world(tmp_path, seed=5, end=END + timedelta(days=1), days=SHORT)
    assert later.regenerated and later.end == first.end + timedelta(days=1)
    assert (
        pd.read_parquet(tmp_path / "raw" / "node_days.parquet")["event_timestamp"].max()
        == later.end
    )


def test_missing_table_forces_regeneration(tmp_path: Path) -> None:
    generate_world(tmp_path, seed=5, end=END, days=SHORT)
    (tmp_path / "raw" / "shipments.parquet").unlink()
    again = generate_world(tmp_path, seed=5, end=END, days=SHORT)
    assert again.regenerated and (tmp_path / "raw" / "shipments.parquet").exists()
    assert (tmp_path / "raw" / MANIFEST).exists()
    assert not list(tmp_path.rglob("*.partial"))


def test_default_end_is_now_and_newest_snapshot_is_yesterday(tmp_path: Path) -> None:
    summary = generate_world(tmp_path, seed=5, days=2)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert summary.end.date() in {yesterday, yesterday - timedelta(days=1)}  # midnight race
    assert summary.end.tzinfo is not None and summary.end.hour == 23


def test_history_days_treats_naive_end_as_utc() -> None:
    days = history_days(datetime(2025, 1, 10, 3, 0), 3)
    assert [d.isoformat() for d in days] == ["2025-01-07", "2025-01-08", "2025-01-09"]
    assert history_days(datetime(2025, 1, 10, 3, 0, tzinfo=UTC), 3) == days


@pytest.mark.parametrize("kwargs", [{"scale": "huge"}, {"days": 0}])
def test_bad_arguments_are_rejected(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate_world(tmp_path, end=END, **kwargs)  # type: ignore[arg-type]


def test_progress_bar_counts_simulated_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate_world(tmp_path, seed=5, end=END, days=3, progress=True)
    err = capsys.readouterr().err
    assert "simulating small world" in err and "3/3" in err
