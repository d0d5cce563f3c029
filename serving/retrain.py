"""Retraining from operations, one step at a time: export the ledger's closed days, merge them
into the canonical history, recompute and materialise features, train challengers on the merged
history and run the promotion gate. Each step is timed; each phase is also its own CLI command
(``routecast history export``, ``routecast features refresh``, ``routecast retrain``) and the
embedded scheduler (``serving/scheduler.py``) runs them on a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from serving.settings import Settings


@dataclass
class RetrainReport:
    steps: dict[str, float] = field(default_factory=dict)
    exported: dict[str, int] = field(default_factory=dict)
    merged: dict[str, int] = field(default_factory=dict)
    challengers: dict[str, str] = field(default_factory=dict)
    promoted: dict[str, bool] = field(default_factory=dict)
    gate: dict[str, str] = field(default_factory=dict)
    promises: dict[str, Any] = field(default_factory=dict)


def merged_dir(settings: Settings) -> Path:
    return settings.data_dir / "merged"


class _Timer:
    def __init__(self, report: RetrainReport, on_step: Callable[[str], None] | None) -> None:
        self.report = report
        self.on_step = on_step

    def __call__(self, name: str, fn: Callable[[], object]) -> None:
        if self.on_step:
            self.on_step(name)
        t0 = time.perf_counter()
        fn()
        self.report.steps[name] = round(time.perf_counter() - t0, 2)


def export(
    settings: Settings,
    *,
    now: datetime | None = None,
    report: RetrainReport | None = None,
    on_step: Callable[[str], None] | None = None,
) -> RetrainReport:
    """Write the ledger's closed days as canonical history; measure the promises kept."""
    from serving.history_export import export_history
    from serving.ledger import Ledger, create_schema, make_engine
    from serving.promise_monitor import promise_summary

    report = report or RetrainReport()
    now = now or datetime.now(UTC)
    step = _Timer(report, on_step)
    engine = make_engine(settings.ledger_url)
    try:
        create_schema(engine)
        step(
            "export ledger history",
            lambda: report.exported.update(export_history(engine, settings.raw_dir, now=now).rows),
        )
        report.promises = promise_summary(
            Ledger(engine),
            since=now - timedelta(days=settings.promise_window_days),
            target=settings.promise_coverage_target,
        )
    finally:
        engine.dispose()
    return report


def refresh_features(
    settings: Settings,
    *,
    now: datetime | None = None,
    report: RetrainReport | None = None,
    on_step: Callable[[str], None] | None = None,
) -> RetrainReport:
    """Merge the exported days into the history, recompute the feature tables from it and
    materialise them into the online store up to ``now``."""
    from features.compute import build_feature_tables
    from features.repo.views import DAILY_TTL
    from features.store import apply_definitions, materialize, open_feature_store
    from serving.history_export import merge_history

    report = report or RetrainReport()
    now = now or datetime.now(UTC)
    step = _Timer(report, on_step)
    merged = merged_dir(settings)
    step("merge history", lambda: report.merged.update(merge_history(settings.raw_dir, merged)))
    step("compute feature tables", lambda: build_feature_tables(merged, settings.feature_dir))

    def online() -> None:
        store = open_feature_store(settings)
        apply_definitions(store, settings.feature_dir)
        # reload the days a served row may come from (the views' TTL and a day): rows the
        # merged history recomputed for them replace what the online store holds
        materialize(store, now, reload=DAILY_TTL + timedelta(days=1))

    step("feast apply + materialize", online)
    return report


def train_and_gate(
    settings: Settings,
    *,
    report: RetrainReport | None = None,
    on_step: Callable[[str], None] | None = None,
    max_rows: int | None = 200_000,
) -> RetrainReport:
    """Train challengers on the merged history (features as refreshed), put the promise
    monitor's findings in their MLflow description, and run the promotion gate."""
    from features.store import open_feature_store
    from serving.promise_monitor import review_text
    from training.config import TrainingConfig
    from training.pipeline import train_all
    from training.promotion import promote
    from training.registry import configure

    report = report or RetrainReport()
    step = _Timer(report, on_step)
    merged = merged_dir(settings)
    store = open_feature_store(settings)
    client = configure(settings.tracking_uri, settings.artifact_dir)
    config = TrainingConfig.from_settings(settings, max_rows=max_rows)

    def train() -> None:
        for r in train_all(store, merged, client, config=config):
            if r.version is not None:
                report.challengers[r.name] = str(r.version.version)

    step("train challengers", train)

    def review() -> None:
        text = review_text(report.promises) if report.promises else "Promise monitor: not run."
        for name, version in report.challengers.items():
            current = client.get_model_version(name, version).description or ""
            client.update_model_version(
                name, version, description=f"{current}\n\n## Promises kept\n\n{text}\n"
            )

    step("promise review", review)

    def gate() -> None:
        for kind, name in (
            ("stockout", settings.stockout_model),
            ("delivery", settings.delivery_model),
        ):
            try:
                result = promote(client, store, merged, kind=kind, config=config)
            except LookupError as exc:
                report.gate[name] = str(exc)
                continue
            report.promoted[name] = result.promoted
            report.gate[name] = result.verdict

    step("promotion gate", gate)
    return report


def retrain(
    settings: Settings,
    *,
    now: datetime | None = None,
    on_step: Callable[[str], None] | None = None,
    max_rows: int | None = 200_000,
) -> RetrainReport:
    """Run export → merge → features → materialise → train → review → gate."""
    now = now or datetime.now(UTC)
    report = export(settings, now=now, on_step=on_step)
    refresh_features(settings, now=now, report=report, on_step=on_step)
    return train_and_gate(settings, report=report, on_step=on_step, max_rows=max_rows)
