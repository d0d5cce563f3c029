"""Models loaded by registry alias (``models:/<name>@champion``), swapped in when the alias moves."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

log = logging.getLogger("routecast.models")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    alias: str
    version: str
    run_id: str | None
    model: Any  # StockoutRiskModel | DeliveryQuantileModel, with predict_array
    loaded_at: datetime


class ModelStore:
    """Holds the current champion of each model; ``refresh`` is called off the request path."""

    def __init__(self, tracking_uri: str, names: dict[str, str], alias: str) -> None:
        self.tracking_uri = tracking_uri
        self.names = names  # role ("stockout", "delivery") -> registered name
        self.alias = alias
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def _client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def refresh(self) -> list[str]:
        """Load any model whose alias now points at a different version; returns roles changed."""
        client = self._client()
        mlflow.set_registry_uri(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        changed = []
        for role, name in self.names.items():
            try:
                mv = client.get_model_version_by_alias(name, self.alias)
            except MlflowException as exc:
                self._errors[role] = (
                    f"no '{self.alias}' alias on {name}: run `routecast demo` or `routecast train` ({exc.error_code})"
                )
                continue
            current = self._models.get(role)
            if current is not None and current.version == str(mv.version):
                self._errors.pop(role, None)  # the registry answers again
                continue
            try:
                pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{self.alias}")
                wrapped = pyfunc.unwrap_python_model().model
            except Exception as exc:  # a broken artifact must not take the service down
                self._errors[role] = f"failed to load {name} v{mv.version}: {exc}"
                log.exception("model load failed", extra={"model": name})
                continue
            loaded = LoadedModel(
                name=name,
                alias=self.alias,
                version=str(mv.version),
                run_id=mv.run_id,
                model=wrapped,
                loaded_at=datetime.now(UTC),
            )
            with self._lock:
                self._models[role] = loaded
            self._errors.pop(role, None)
            changed.append(role)
            log.info("loaded model %s version %s", name, mv.version)
        return changed

    def get(self, role: str) -> LoadedModel | None:
        return self._models.get(role)

    def ready(self) -> bool:
        return all(role in self._models for role in self.names)

    def versions(self) -> dict[str, str]:
        return {m.name: m.version for m in self._models.values()}

    def errors(self) -> dict[str, str]:
        return dict(self._errors)
