"""Typed dependency aliases for routers: each takes the narrow part it needs.

Only the decision path (route, place, reject) takes the whole ``Runtime``; reads and
maintenance take the ledger, the models, the catalogue, the policy or the settings.

The getters are ``async``: each only reads an attribute, and FastAPI runs a plain ``def``
dependency in its thread pool (a thread hop and a GIL hand-over per dependency per request,
which showed in the request profile).
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


async def get_runtime(request: Request) -> Runtime:
    return _runtime(request)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_app_settings(request: Request) -> Settings:
    return _runtime(request).settings


async def get_ledger(request: Request) -> Ledger:
    return _runtime(request).ledger


async def get_models(request: Request) -> ModelStore:
    return _runtime(request).models


async def get_keys(request: Request) -> SqlKeyStore:
    return _runtime(request).keys


async def get_catalogue(request: Request) -> Catalogue:
    return _runtime(request).catalogue


async def get_policies(request: Request) -> PolicyStore:
    return _runtime(request).policies


async def get_promises(request: Request) -> PromiseMonitor:
    return _runtime(request).promises


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ModelsDep = Annotated[ModelStore, Depends(get_models)]
KeysDep = Annotated[SqlKeyStore, Depends(get_keys)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
PoliciesDep = Annotated[PolicyStore, Depends(get_policies)]
PromisesDep = Annotated[PromiseMonitor, Depends(get_promises)]
