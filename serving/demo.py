"""The embedded demo, step by step: world → feature tables → feast apply → materialize →
train and register. Every step is idempotent, so ``make run`` is cheap the second time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from serving.settings import Settings

#: Rows per training set in the demo: enough for stable metrics, quick on 2 cores.
DEMO_MAX_ROWS = 40_000


@dataclass
class StepTiming:
    name: str
    seconds: float
    note: str = ""


@dataclass
class DemoReport:
    steps: list[StepTiming] = field(default_factory=list)
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    #: the moment the world's history ends: the same ``end`` rebuilds nothing, a new day does
    end: datetime | None = None


def _state_path(settings: Settings) -> Any:
    return settings.home / "demo_state.json"


def _load_state(settings: Settings) -> dict[str, Any]:
    path = _state_path(settings)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(settings: Settings, state: dict[str, Any]) -> None:
    _state_path(settings).write_text(json.dumps(state, indent=2, default=str))


def build_demo(
    settings: Settings,
    *,
    progress: bool = True,
    force: bool = False,
    on_step: Callable[[str], None] | None = None,
    end: datetime | None = None,
) -> DemoReport:
    """Build (or refresh) everything the API needs under ``settings.home``."""
    from features.compute import build_feature_tables
    from features.store import apply_definitions, materialize, open_feature_store
    from simulation import generate_world
    from training.config import TrainingConfig
    from training.pipeline import train_all
    from training.registry import configure, current_alias_version

    settings.home.mkdir(parents=True, exist_ok=True)
    report = DemoReport()
    state = {} if force else _load_state(settings)
    end = end or datetime.now(UTC)
    report.end = end

    def step(name: str, fn: Callable[[], str]) -> None:
        if on_step:
            on_step(name)
        t0 = time.perf_counter()
        note = fn()
        report.steps.append(StepTiming(name, time.perf_counter() - t0, note))

    world_key: dict[str, Any] = {}

    def world() -> str:
        summary = generate_world(
            settings.data_dir, scale=settings.scale, seed=settings.seed, end=end, progress=progress
        )
        world_key.update(scale=settings.scale, seed=settings.seed, end=str(summary.end))
        return f"{summary.counts}"

    step("simulate world", world)
    fresh_world = state.get("world") != world_key

    def tables() -> str:
        if not fresh_world and (settings.feature_dir / "feature_store.yaml").exists():
            return "up to date"
        paths = build_feature_tables(settings.raw_dir, settings.feature_dir, progress=progress)
        return f"{len(paths)} tables"

    step("compute feature tables", tables)
    store = open_feature_store(settings)
    step("feast apply", lambda: ", ".join(apply_definitions(store, settings.feature_dir)))

    def mat() -> str:
        materialize(store, end, progress=progress)
        return "online store up to date"

    step("feast materialize", mat)
    client = configure(settings.tracking_uri, settings.artifact_dir)

    # The names and alias the server will load, so the demo trains exactly what it serves.
    config = TrainingConfig.from_settings(settings, max_rows=DEMO_MAX_ROWS)

    def train() -> str:
        have = all(
            current_alias_version(client, n, config.champion_alias) is not None
            for n in (config.stockout_model, config.delivery_model)
        )
        if have and not fresh_world:
            return "champions exist; skipped (use `routecast train` for a challenger)"
        results = train_all(store, settings.raw_dir, client, config=config)
        for r in results:
            report.metrics[r.name] = r.metrics
            if r.version:
                report.versions[r.name] = f"v{r.version.version} @{','.join(r.version.aliases)}"
        return "; ".join(report.versions.values())

    step("train and register models", train)

    def ledger() -> str:
        from serving.key_store import SqlKeyStore
        from serving.ledger import Ledger, create_schema, make_engine
        from serving.ledger_seed import seed_ledger

        if fresh_world and settings.database_url is None:
            # A new demo world means new stock: start its embedded ledger afresh.
            for suffix in ("", "-wal", "-shm"):
                (settings.home / f"ledger.db{suffix}").unlink(missing_ok=True)
            settings.demo_key_file.unlink(missing_ok=True)
        engine = make_engine(settings.ledger_url)
        try:
            create_schema(engine)
            loaded = seed_ledger(Ledger(engine), settings.raw_dir)
            if not settings.demo_key_file.exists():
                raw = SqlKeyStore(engine).create({"route", "orders", "inventory", "admin"}, "demo")
                settings.demo_key_file.write_text(raw + "\n")
                settings.demo_key_file.chmod(0o600)
        finally:
            engine.dispose()
        return f"{loaded} stock rows loaded" if loaded else "ledger already seeded"

    step("seed inventory ledger and demo API key", ledger)
    state["world"] = world_key
    state["built_at"] = datetime.now(UTC).isoformat()
    state["timings"] = {s.name: round(s.seconds, 2) for s in report.steps}
    if report.metrics:
        state["metrics"] = report.metrics
    _save_state(settings, state)
    return report
