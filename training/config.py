"""What a training run needs to know, built from the same settings the server reads.

The server loads ``models:/<name>@<alias>``; training registers under those names and moves
that alias. Both come from one settings object, so setting ``ROUTECAST_STOCKOUT_MODEL``
changes what is trained and what is served together. ``training/`` never imports the
service: ``from_settings`` reads any object with the settings' attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

STOCKOUT_MODEL = "routecast-stockout-risk"
DELIVERY_MODEL = "routecast-delivery-days"
CHAMPION = "champion"
CHALLENGER = "challenger"


class GateThresholds(BaseModel):
    """What a challenger must show on the holdout to replace the champion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_auc_gain: float = 0.0
    max_brier_increase: float = 0.0
    max_ece: float = 0.05
    max_mae_ratio: float = 1.0
    min_p90_coverage: float = 0.85
    max_mean_p90_ratio: float = 1.10


class TrainingSettings(Protocol):
    """The settings attributes training reads (``serving.settings.Settings`` has them)."""

    @property
    def stockout_model(self) -> str: ...
    @property
    def delivery_model(self) -> str: ...
    @property
    def model_alias(self) -> str: ...
    @property
    def lgbm_threads(self) -> int: ...
    @property
    def promotion_thresholds(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class TrainingConfig:
    """Model names, the alias the server loads, gate thresholds, threads and budgets."""

    stockout_model: str = STOCKOUT_MODEL
    delivery_model: str = DELIVERY_MODEL
    champion_alias: str = CHAMPION
    challenger_alias: str = CHALLENGER
    num_threads: int = 2
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    max_rows: int | None = 200_000
    num_boost_round: int = 400

    @classmethod
    def from_settings(cls, settings: TrainingSettings, **overrides: Any) -> TrainingConfig:
        """The run the server will see: its names, its alias, its thresholds and threads."""
        base = cls(
            stockout_model=settings.stockout_model,
            delivery_model=settings.delivery_model,
            champion_alias=settings.model_alias,
            num_threads=settings.lgbm_threads,
            thresholds=GateThresholds(**settings.promotion_thresholds),
        )
        return cls(**{**base.__dict__, **overrides})

    def model_name(self, kind: str) -> str:
        """Registered name of ``stockout`` or ``delivery``."""
        names = {"stockout": self.stockout_model, "delivery": self.delivery_model}
        if kind not in names:
            raise ValueError(f"model kind must be stockout or delivery, got {kind!r}")
        return names[kind]
