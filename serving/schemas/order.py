"""HTTP request and response models. Validation errors name the field (422)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routing.calendar import zone
from routing.domain import Channel, Mode


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str = Field("US", min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    postal_code: str | None = Field(None, min_length=3, max_length=10)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    region: str | None = Field(None, description="State / region code; derived from postal code")
    timezone: str | None = Field(
        None,
        max_length=64,
        description="IANA zone promise dates are given in; derived from a US postal code, else UTC",
        examples=["America/New_York"],
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                zone(v)
            except ValueError as exc:
                raise ValueError(f"{exc}; use an IANA name such as America/Chicago") from exc
        return v

    @model_validator(mode="after")
    def _locatable(self) -> Destination:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        if self.lat is None and not self.postal_code:
            raise ValueError("destination needs a postal_code or lat/lon")
        return self


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: str = Field(..., min_length=1, max_length=64)
    sku: str = Field(..., min_length=1, max_length=64)
    qty: float = Field(..., gt=0, description="Units; integral unless the SKU allows decimals")

    @field_validator("qty")
    @classmethod
    def _integral(cls, v: float) -> float:
        if v != int(v):
            raise ValueError("qty must be a whole number of units")
        return v


class OrderIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "order_id": "A-1",
                "channel": "web",
                "destination": {"country": "US", "postal_code": "10001"},
                "lines": [{"line_id": "1", "sku": "SKU-00001", "qty": 2}],
            }
        },
    )

    order_id: str = Field(..., min_length=1, max_length=64)
    channel: str = Field(Channel.WEB.value, min_length=1, max_length=32)
    destination: Destination
    lines: list[OrderLineIn] = Field(..., min_length=1)
    mode: Mode | None = Field(None, description="Override the routing mode for this order")
    allow_partial: bool = False
    promise_days: float | None = Field(None, gt=0)
    pickup_node_id: str | None = Field(
        default=None, max_length=64, description="Collect at this node: only it may serve the order"
    )
    customer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Who ordered (screening counts per customer)",
    )
    billing_country: str | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="ISO 3166-1 alpha-2 of the billing address",
    )
    ship_complete: bool = Field(
        default=False,
        description="One shipment with every line, or none (never partial, never split)",
    )
    max_shipments: int | None = Field(
        default=None, ge=1, le=50, description="At most this many parcels for this order"
    )

    @field_validator("lines")
    @classmethod
    def _unique_lines(cls, lines: list[OrderLineIn]) -> list[OrderLineIn]:
        seen: set[str] = set()
        for line in lines:
            if line.line_id in seen:
                raise ValueError(f"line_id {line.line_id!r} appears twice")
            seen.add(line.line_id)
        return lines


class RouteResponse(BaseModel):
    """The plan from ``routing`` plus what the server adds (decision id, models, degraded)."""

    model_config = ConfigDict(extra="allow")

    decision_id: str
    order_id: str
    mode: str
    shippable: bool
    degraded: bool
    degraded_reasons: list[str] = []
    allocations: list[dict[str, Any]]
    unallocated: list[dict[str, Any]] = []
    ranking: Any = None
    models: dict[str, str]
    promise: dict[str, Any] | None = Field(
        None,
        description="ship_by, deliver_p50, deliver_by (dates in promise.timezone, the "
        "destination's) and confidence; null when nothing is allocated",
    )
    timings_ms: dict[str, float] = {}
