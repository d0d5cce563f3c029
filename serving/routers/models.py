"""Which model versions serve, by alias."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import RuntimeDep
from serving.schemas.catalogue import ModelInfo

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=list[ModelInfo])
def list_models(runtime: RuntimeDep) -> list[ModelInfo]:
    out = []
    errors = runtime.models.errors()
    for role, name in runtime.models.names.items():
        loaded = runtime.models.get(role)
        out.append(
            ModelInfo(
                name=name,
                alias=runtime.models.alias,
                version=loaded.version if loaded else None,
                run_id=loaded.run_id if loaded else None,
                loaded_at=loaded.loaded_at.isoformat() if loaded else None,
                status="loaded" if loaded else errors.get(role, "not loaded"),
            )
        )
    return out
