"""Answers describing what the service knows: loaded models and the SKU catalogue."""

from __future__ import annotations

from pydantic import BaseModel


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: str | None
    run_id: str | None = None
    loaded_at: str | None = None
    status: str


class SkuInfo(BaseModel):
    sku: str
    product_group: str
    weight_kg: float
    price: float
    nodes_in_stock: int
    units_available: float
