"""Typed dependency aliases for routers: each takes the narrow part it needs.

Only the decision path (route, place, reject) takes the whole ``Runtime``; reads and
maintenance take the ledger, the models, the catalogue, the policy or the settings.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.catalogue import Catalogue
from serving.key_store import SqlKeyStore
from serving.ledger import Ledger
from serving.model_store import ModelStore
from serving.policy_store import PolicyStore
from serving.promise_monitor import PromiseMonitor
from serving.runtime import Runtime
from serving.settings import Settings


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_app_settings(request: Request) -> Settings:
    return get_runtime(request).settings


def get_ledger(request: Request) -> Ledger:
    return get_runtime(request).ledger


def get_models(request: Request) -> ModelStore:
    return get_runtime(request).models


def get_keys(request: Request) -> SqlKeyStore:
    return get_runtime(request).keys


def get_catalogue(request: Request) -> Catalogue:
    return get_runtime(request).catalogue


def get_policies(request: Request) -> PolicyStore:
    return get_runtime(request).policies


def get_promises(request: Request) -> PromiseMonitor:
    return get_runtime(request).promises


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ModelsDep = Annotated[ModelStore, Depends(get_models)]
KeysDep = Annotated[SqlKeyStore, Depends(get_keys)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
PoliciesDep = Annotated[PolicyStore, Depends(get_policies)]
PromisesDep = Annotated[PromiseMonitor, Depends(get_promises)]
