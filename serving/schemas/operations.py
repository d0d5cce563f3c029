"""Request bodies of the orchestration endpoints (orders, inventory, nodes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field

from routing.domain import RejectReason


def _require_offset(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-01-01T10:00:00Z")
    return v


#: A timestamp that says which instant it is (naive times are refused, not guessed).
AwareTime = Annotated[datetime, AfterValidator(_require_offset)]


class RejectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(..., min_length=1)
    line_ids: list[str] = Field(..., min_length=1)
    reason: RejectReason
    note: str | None = None


class ShipmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_ids: list[str] | None = Field(
        None, description="Lines shipped; all reserved lines if omitted"
    )
    carrier: str | None = Field(None, min_length=1, max_length=64, examples=["UPS"])
    tracking_number: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        validation_alias=AliasChoices("tracking_number", "tracking"),
        description="One parcel's number: ship one node's lines per request when given",
    )
    shipped_at: AwareTime | None = Field(
        None, description="When the parcel left (the sender's clock); now if omitted"
    )


class DeliveryIn(BaseModel):
    """A carrier's confirmation that one shipment was delivered."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        ..., min_length=1, max_length=128, description="Carrier event id; a resend is a no-op"
    )
    delivered_at: AwareTime
    shipment_id: str | None = Field(
        None, min_length=1, max_length=160, description="From the order's shipments"
    )
    carrier: str | None = Field(None, min_length=1, max_length=64)
    tracking_number: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Names the shipment when shipment_id is omitted",
    )


class DeliveriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deliveries: list[DeliveryIn] = Field(..., min_length=1, max_length=1000)


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(..., min_length=1, max_length=128)
    event_time: AwareTime
    node_id: str = Field(..., min_length=1)
    sku: str = Field(..., min_length=1)
    kind: Literal["count", "delta"]
    qty: int
    source: str | None = Field(None, description="Channel that sent it (POS, WMS, marketplace…)")


class AdjustmentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[AdjustmentIn] = Field(..., min_length=1, max_length=10_000)


class CapacityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_capacity: int = Field(..., ge=0, description="Orders per day; 0 = unlimited")
    enabled: bool | None = None


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

    weekly_hours: dict[str, list[str]] | None = None
    holidays: list[str] = []
    closures: list[dict[str, Any]] = []
    cutoff: str | None = Field(
        None,
        description="Local time after which an order ships the next open day; "
        "the day's closing time if omitted",
        examples=["15:00"],
    )
