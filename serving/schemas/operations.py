"""Request bodies of the orchestration endpoints (orders, inventory, nodes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routing.domain import RejectReason


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
    carrier: str | None = None
    tracking: str | None = None


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(..., min_length=1, max_length=128)
    event_time: datetime
    node_id: str = Field(..., min_length=1)
    sku: str = Field(..., min_length=1)
    kind: Literal["count", "delta"]
    qty: int
    source: str | None = Field(None, description="Channel that sent it (POS, WMS, marketplace…)")

    @field_validator("event_time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("event_time needs a UTC offset, e.g. 2026-01-01T10:00:00Z")
        return v


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
                "closures": [
                    {"start": "2026-12-01T00:00", "end": "2026-12-02T00:00", "reason": "stocktake"}
                ],
            }
        },
    )

    weekly_hours: dict[str, list[str]] | None = None
    holidays: list[str] = []
    closures: list[dict[str, Any]] = []
