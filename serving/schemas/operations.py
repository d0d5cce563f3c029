"""Request bodies of the orchestration endpoints (orders, inventory, nodes).

Every value is bounded (``serving/bounds.py``) so the OpenAPI document states the limits and
both database backends refuse the same inputs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from routing.calendar import MAX_CLOSURES, MAX_HOLIDAYS, WEEKDAYS
from routing.domain import RejectReason
from serving.bounds import (
    MAX_DAILY_CAPACITY,
    MAX_LINES,
    MAX_STOCK_QTY,
    AwareTime,
    BoundedDate,
    Id,
    LocalTime,
    LongId,
    Text,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
assert Weekday.__args__ == WEEKDAYS  # type: ignore[attr-defined]
Span = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{2}:[0-9]{2}(:[0-9]{2})?-[0-9]{2}:[0-9]{2}(:[0-9]{2})?$")
]
ClockTime = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}:[0-9]{2}(:[0-9]{2})?$")]


class RejectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: Id
    line_ids: list[LongId] = Field(..., min_length=1, max_length=MAX_LINES)
    reason: RejectReason
    note: Text | None = None


class ShipmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_ids: list[LongId] | None = Field(
        None, max_length=MAX_LINES, description="Lines shipped; all reserved lines if omitted"
    )
    carrier: Annotated[Text, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, examples=["UPS"]
    )
    tracking_number: LongId | None = Field(
        None,
        validation_alias=AliasChoices("tracking_number", "tracking"),
        description="One parcel's number: ship one node's lines per request when given",
    )
    shipped_at: AwareTime | None = Field(
        None, description="When the parcel left (the sender's clock); now if omitted"
    )


class DeliveryIn(BaseModel):
    """A carrier's confirmation that one shipment was delivered."""

    model_config = ConfigDict(extra="forbid")

    event_id: LongId = Field(..., description="Carrier event id; a resend is a no-op")
    delivered_at: AwareTime
    shipment_id: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]+$")] | None = Field(
        None, min_length=1, max_length=160, description="From the order's shipments"
    )
    carrier: Annotated[Text, StringConstraints(min_length=1, max_length=64)] | None = None
    tracking_number: LongId | None = Field(
        None, description="Names the shipment when shipment_id is omitted"
    )


class DeliveriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deliveries: list[DeliveryIn] = Field(..., min_length=1, max_length=1000)


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: LongId
    event_time: AwareTime
    node_id: Id
    sku: Id
    kind: Literal["count", "delta"]
    qty: int = Field(..., ge=-MAX_STOCK_QTY, le=MAX_STOCK_QTY)
    source: Text | None = Field(None, description="Channel that sent it (POS, WMS, marketplace…)")


class AdjustmentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[AdjustmentIn] = Field(..., min_length=1, max_length=10_000)


class CapacityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_capacity: int = Field(
        ..., ge=0, le=MAX_DAILY_CAPACITY, description="Orders per day; 0 = unlimited"
    )
    enabled: bool | None = None


class ClosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: LocalTime
    end: LocalTime
    reason: Text | None = None


class CalendarIn(BaseModel):
    """Weekly opening hours, holidays and planned closures, in the node's time zone."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "weekly_hours": {"mon": ["08:00-20:00"], "sun": []},
                "holidays": ["2026-12-25"],
                "cutoff": "15:00",
                "closures": [
                    {"start": "2026-12-01T00:00", "end": "2026-12-02T00:00", "reason": "stocktake"}
                ],
            }
        },
    )

    weekly_hours: dict[Weekday, Annotated[list[Span], Field(max_length=24)]] | None = None
    holidays: list[BoundedDate] = Field([], max_length=MAX_HOLIDAYS)
    closures: list[ClosureIn] = Field([], max_length=MAX_CLOSURES)
    cutoff: ClockTime | None = Field(
        None,
        description="Local time after which an order ships the next open day; "
        "the day's closing time if omitted",
        examples=["15:00"],
    )
