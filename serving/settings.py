"""One settings object per process: ``ROUTECAST_`` environment variables, optionally a YAML file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from routing.domain import Mode


def _yaml_file() -> dict[str, Any]:
    path = os.environ.get("ROUTECAST_CONFIG")
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"ROUTECAST_CONFIG={path} must hold a mapping of settings")
    return data


class WebhookEndpoint(BaseModel):
    """A receiver of signed events (Standard Webhooks); ``secret`` is ``whsec_`` + base64."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(pattern=r"^https?://")
    secret: str

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        import base64
        import binascii

        try:
            key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except binascii.Error as exc:
            raise ValueError("secret must be 'whsec_' followed by base64") from exc
        if len(key) < 24:
            raise ValueError("secret must decode to at least 24 bytes")
        return value


class Settings(BaseSettings):
    """Where things live and how the service behaves. Paths are relative to ``home``."""

    model_config = SettingsConfigDict(env_prefix="ROUTECAST_", frozen=True, extra="ignore")

    home: Path = Field(default=Path(".routecast"), description="Working directory of the demo.")
    scale: Literal["small", "medium", "large"] = "small"
    seed: int = 7
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "routecast"
    feast_project: str = "routecast"
    default_mode: Mode = Mode.PREDICTIVE
    mlflow_tracking_uri: str | None = None
    stockout_model: str = "routecast-stockout-risk"
    delivery_model: str = "routecast-delivery-days"
    model_alias: str = "champion"
    lgbm_threads: int = Field(
        default=2, ge=1, description="LightGBM training threads (ROUTECAST_LGBM_THREADS)."
    )
    promotion_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description='Overrides of the promotion gate\'s thresholds, e.g. {"max_ece": 0.04}.',
    )
    feature_staleness_hours: float = 72.0
    #: push ledger movements to the node×SKU features (Feast PushSource) every this many seconds
    live_features_seconds: float = 1.0
    #: at start, push every ledger row when features are older than the staleness bound
    bring_forward_stale_features: bool = True
    #: promise monitoring: share of shipments a lane must deliver by ``deliver_by`` before its
    #: P90 is widened, the window measured, and the deliveries a lane needs to be judged
    promise_coverage_target: float = Field(default=0.9, gt=0.0, lt=1.0)
    promise_window_days: float = Field(default=28.0, gt=0.0)
    promise_min_deliveries: int = Field(default=20, ge=1)
    simulated_clock: bool = Field(
        default=False,
        description="Read a simulated clock an admin key sets (PUT /v1/admin/clock), for "
        "`routecast operate --url`; never in production (`routecast serve --simulated-clock`).",
    )
    snapshot_refresh_seconds: float = 60.0
    score_memo: bool = Field(
        default=True,
        description="Reuse predictions already made against the same feature rows (exact: "
        "serving.score_memo); off only to measure scoring cold (ROUTECAST_SCORE_MEMO).",
    )
    model_reload_seconds: float = 30.0
    max_order_lines: int = 200
    database_url: str | None = Field(
        default=None, description="Ledger database; default SQLite file under home."
    )
    policy_file: Path | None = Field(
        default=None, description="Routing policy YAML; reloaded when the file changes."
    )
    auth_enabled: bool = True
    api_key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a worker trusts an API key it looked up for /v1 requests: a "
        "revocation made by another process takes effect within this time (0: every request "
        "reads the key store).",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, description="Larger request bodies get 413 before parsing."
    )
    idempotency_claim_seconds: float = Field(
        default=15.0,
        description="An in-flight Idempotency-Key claim older than this is taken over "
        "(its request crashed or lost the database); placements take well under a second.",
    )
    max_rejections: int = 3
    webhooks: list[WebhookEndpoint] = Field(
        default_factory=list,
        description='Event receivers, e.g. ROUTECAST_WEBHOOKS=\'[{"name":...,"url":...,"secret":...}]\'.',
    )
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    low_stock_threshold: int = Field(
        default=3, ge=0, description="inventory.low when available drops below this; 0 = off."
    )
    challenger_alias: str = Field(
        default="challenger", description="Registry alias of a trained candidate the console shows."
    )
    console_session_seconds: int = Field(
        default=900, ge=60, le=43_200, description="Console sign-in lifetime (seconds)."
    )
    console_secret: SecretStr | None = Field(
        default=None,
        description="Key signing console sessions; default a random one kept in home/console_secret.",
    )
    mlflow_ui_url: str = Field(
        default="http://127.0.0.1:5000", description="Where the console links to the MLflow UI."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        from pydantic_settings import InitSettingsSource

        return (
            init_settings,
            env_settings,
            InitSettingsSource(settings_cls, init_kwargs=_yaml_file()),
        )

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def feature_dir(self) -> Path:
        return self.home / "features"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def ledger_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    @property
    def demo_key_file(self) -> Path:
        return self.home / "demo_api_key"

    @property
    def artifact_dir(self) -> Path:
        return (self.home / "mlartifacts").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
