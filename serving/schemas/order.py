"""HTTP request and response models. Validation errors name the field (422)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from routing.calendar import zone
from routing.domain import Channel, Mode
from serving.bounds import MAX_LINE_QTY, MAX_LINES, Id, Text


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] = Field(
        "US", description="ISO 3166-1 alpha-2"
    )
    postal_code: (
        Annotated[str, StringConstraints(min_length=3, max_length=10, pattern=r"^[0-9A-Za-z -]+$")]
        | None
    ) = None
    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    region: Annotated[Text, StringConstraints(max_length=8)] | None = Field(
        None, description="State / region code; derived from postal code"
    )
    timezone: Text | None = Field(
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


#: Candidates per line the answer's ``ranking`` lists unless the order asks otherwise: enough
#: to see the alternatives an operator would weigh, without an entry per stocking node.
DEFAULT_RANKING_TOP = 10
#: Above this, ask for ``"all"``.
MAX_RANKING_TOP = 1000


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: Id
    sku: Id
    qty: int = Field(..., ge=1, le=MAX_LINE_QTY, description="Whole units")


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

    order_id: Id
    channel: Annotated[Id, StringConstraints(max_length=32)] = Channel.WEB.value
    destination: Destination
    lines: list[OrderLineIn] = Field(..., min_length=1, max_length=MAX_LINES)
    mode: Mode | None = Field(None, description="Override the routing mode for this order")
    allow_partial: bool = False
    promise_days: float | None = Field(None, gt=0, le=365, allow_inf_nan=False)
    pickup_node_id: Id | None = None
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
    ranking_top: Annotated[int, Field(ge=0, le=MAX_RANKING_TOP)] | Literal["all"] = Field(
        default=DEFAULT_RANKING_TOP,
        description="How many candidates each line's `ranking` lists: the best N eligible "
        "nodes, every node allocated to the line wherever it ranks, and the N nearest fenced "
        'nodes; "all" lists every candidate. Every candidate is ranked either way, and '
        "`eligible_count` / `fenced_count` count them all.",
        examples=[10, "all"],
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
    features_as_of: str | None = Field(
        None,
        description="Event time of the oldest feature row the models read for this order "
        "(null when the models did not run)",
    )
    stock_features: list[dict[str, Any]] = Field(
        [],
        description="Per allocated node and SKU, the live stock features the decision read "
        "(on_hand, available, reserved, days/hours since count, rejections in 7 days)",
    )
    timings_ms: dict[str, float] = {}
