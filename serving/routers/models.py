"""Which model versions serve, by alias."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import ModelsDep
from serving.schemas.catalogue import ModelInfo
from serving.security import RouteScope

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=list[ModelInfo])
def list_models(models: ModelsDep, _: RouteScope) -> list[ModelInfo]:
    """Model versions in service; needs a key (it names MLflow runs)."""
    out = []
    errors = models.errors()
    for role, name in models.names.items():
        loaded = models.get(role)
        out.append(
            ModelInfo(
                name=name,
                alias=models.alias,
                version=loaded.version if loaded else None,
                run_id=loaded.run_id if loaded else None,
                loaded_at=loaded.loaded_at.isoformat() if loaded else None,
                status="loaded" if loaded else errors.get(role, "not loaded"),
            )
        )
    return out
