"""Models loaded by registry alias (``models:/<name>@champion``), swapped in when the alias moves.

Each version loaded through MLflow is also kept in a local cache (``<home>/cache/models``):
the pickled model and, when it reproduces the model's predictions exactly, its compact
prediction-only form (``serving.compact_model``: LightGBM model text and JSON). At start the
service reads the alias straight from the registry's database and, when it points at a
cached version, loads the compact form (no MLflow, training code, scikit-learn or pandas
import: milliseconds instead of ten seconds), else the pickle; the MLflow refresh then runs
in the background as usual. A version not cached, a registry that is not a database, or any
doubt about the alias means the ordinary MLflow load.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving import compact_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("routecast.models")

#: Registries the alias can be read from with SQL (MLflow's database-backed stores).
_SQL_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")


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

    def __init__(
        self,
        tracking_uri: str,
        names: dict[str, str],
        alias: str,
        cache_dir: Path | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.names = names  # role ("stockout", "delivery") -> registered name
        self.alias = alias
        self.cache_dir = cache_dir
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def _client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # -- the local cache ---------------------------------------------------------------------
    def _cache_path(self, name: str, version: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / name / version

    def _write_cache(self, loaded: LoadedModel) -> None:
        folder = self._cache_path(loaded.name, loaded.version)
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "model.pkl.tmp"
            tmp.write_bytes(pickle.dumps(loaded.model, protocol=pickle.HIGHEST_PROTOCOL))
            meta = {"name": loaded.name, "version": loaded.version, "run_id": loaded.run_id}
            (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            tmp.replace(folder / "model.pkl")  # the model file appears last, whole
        except OSError:
            log.exception("could not cache model %s v%s", loaded.name, loaded.version)
            return
        self._write_compact(folder, loaded.model)

    @staticmethod
    def _write_compact(folder: Path, model: Any) -> None:
        """The compact form beside the pickle, only when it predicts exactly what the model
        predicts (else the pickle keeps serving that version)."""
        try:
            compact = compact_model.verified_compact(model)
            if compact is None:
                log.info("no exact compact form for %s; its pickle serves", type(model).__name__)
                return
            compact_model.write(folder, *compact)
        except Exception:  # the compact form only saves start-up time
            log.exception("could not write the compact form in %s", folder)

    def _alias_from_database(self, name: str) -> tuple[str, str | None] | None:
        """(version, run_id) the alias points at, read from the registry's tables; None when
        the registry is not a database or the answer is not exactly one row."""
        if not self.tracking_uri.startswith(_SQL_SCHEMES):
            return None
        from sqlalchemy import create_engine, text

        engine = create_engine(self.tracking_uri)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT v.version, v.run_id FROM registered_model_aliases a "
                        "JOIN model_versions v ON v.name = a.name AND v.version = a.version "
                        "WHERE a.name = :name AND a.alias = :alias"
                    ),
                    {"name": name, "alias": self.alias},
                ).all()
        finally:
            engine.dispose()
        if len(rows) != 1:
            return None
        return str(rows[0][0]), rows[0][1]

    @staticmethod
    def _read_compact(folder: Path) -> Any:
        try:
            return compact_model.read(folder)
        except Exception:  # an unreadable compact form: the pickle serves
            log.exception("compact model in %s not usable", folder)
            return None

    def load_cached(self) -> list[str]:
        """Load each champion from the local cache when the registry's alias points at the
        cached version (same run); returns the roles loaded. Anything else is left to
        ``refresh``."""
        loaded_roles = []
        for role, name in self.names.items():
            try:
                found = self._alias_from_database(name)
                folder = None if found is None else self._cache_path(name, found[0])
                if found is None or folder is None or not (folder / "model.pkl").exists():
                    continue
                meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
                if meta.get("run_id") != found[1]:
                    continue
                model = self._read_compact(folder)
                if model is None:
                    model = pickle.loads((folder / "model.pkl").read_bytes())
                    self._write_compact(folder, model)  # the next start skips the pickle
            except Exception:  # the MLflow path decides; the cache only saves time
                log.exception("cached model %s not usable", name)
                continue
            with self._lock:
                self._models[role] = LoadedModel(
                    name=name,
                    alias=self.alias,
                    version=found[0],
                    run_id=found[1],
                    model=model,
                    loaded_at=datetime.now(UTC),
                )
            loaded_roles.append(role)
            log.info("loaded model %s version %s from the local cache", name, found[0])
        return loaded_roles

    def _unchanged(self) -> bool:
        """Whether the registry's database says every alias still points at the version and
        run loaded here (then MLflow need not be imported or asked: importing it costs a
        worker seconds of CPU, and the refresher asks every half minute)."""
        try:
            for role, name in self.names.items():
                current = self._models.get(role)
                found = self._alias_from_database(name)
                if current is None or found is None or found != (current.version, current.run_id):
                    return False
        except Exception:  # MLflow's own answer decides
            return False
        return True

    def refresh(self) -> list[str]:
        """Load any model whose alias now points at a different version; returns roles changed."""
        if self._unchanged():
            self._errors.clear()  # the registry answers, and names what is loaded
            return []
        import mlflow
        from mlflow.exceptions import MlflowException

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
            self._write_cache(loaded)
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
