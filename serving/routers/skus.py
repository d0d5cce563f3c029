"""SKU discovery so a new user can find something to route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.deps import CatalogueDep, LedgerDep
from serving.schemas.catalogue import SkuInfo
from serving.security import RouteScope

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get("/skus", response_model=list[SkuInfo])
def list_skus(
    ledger: LedgerDep,
    catalogue: CatalogueDep,
    _: RouteScope,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    in_stock: bool = True,
) -> list[SkuInfo]:
    totals: dict[str, tuple[int, float]] = {}
    for level in ledger.availability():
        key = level.sku.upper()
        n, units = totals.get(key, (0, 0.0))
        totals[key] = (n + (level.available > 0), units + max(level.available, 0))
    rows = []
    for key, rec in sorted(catalogue.skus.items()):
        n, units = totals.get(key, (0, 0.0))
        if in_stock and n == 0:
            continue
        rows.append(
            SkuInfo(
                sku=rec.sku,
                product_group=rec.product_group,
                weight_kg=rec.weight_kg,
                price=rec.price,
                nodes_in_stock=n,
                units_available=units,
            )
        )
    rows.sort(key=lambda r: (-r.nodes_in_stock, r.sku))
    return rows[:limit]
