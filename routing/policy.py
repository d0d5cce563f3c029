"""Routing policy: YAML text -> dict -> validated pydantic model.

Operations edit the policy, so every field is validated with a message naming it. The
hot path never touches pydantic: ``Policy.rules(group)`` returns a resolved, frozen
``GroupRules`` dataclass cached per product group.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from routing.domain import Channel, Mode
from routing.errors import InvalidPolicy
from routing.returns import ReturnsPolicy
from routing.screening import ScreeningRules

POLICY_VERSION = "1"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneBand(_Strict):
    """Carrier zone by great-circle distance: a parcel fee plus a rate per kg."""

    max_km: float | None = Field(default=None, gt=0, description="upper bound; null = no bound")
    per_parcel: float = Field(..., ge=0)
    per_kg: float = Field(..., ge=0)


class DeliveryRule(_Strict):
    """Delivery days without a model (``cost`` mode): base + distance / speed."""

    base_days: float = Field(default=1.0, ge=0)
    km_per_day: float = Field(default=800.0, gt=0)
    p90_ratio: float = Field(default=1.5, ge=1.0)


class CarrierCalendar(_Strict):
    """Days carriers do not deliver (at the destination): promise dates skip them."""

    days_off: list[Weekday] = Field(default_factory=lambda: list[Weekday](["sun"]))
    holidays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _delivers_some_day(self) -> CarrierCalendar:
        if len(set(self.days_off)) == 7:
            raise ValueError("days_off: carriers must deliver on at least one weekday")
        return self


def _knob(default: Any, **bounds: float) -> Any:
    """A per-group policy knob: its built-in default and its bounds, declared once."""
    return field(default=default, metadata=bounds)


@dataclass(frozen=True, slots=True)
class GroupRules:
    """Plain-data view of the policy for one group, read on the hot path.

    The fields with a default are the per-group knobs, declared here once: ``GroupPolicy``
    (what a policy file may set), the built-in ``defaults`` block and the list of knobs the
    defaults must set are all derived from them.
    """

    ship_together: bool
    zones: tuple[tuple[float, float, float], ...]  # (max_km, per_parcel, per_kg)
    unknown_distance_km: float
    base_days: float
    km_per_day: float
    p90_ratio: float
    weight_shipping: float = _knob(1.0, ge=0)
    weight_handling: float = _knob(1.0, ge=0)
    weight_stockout: float = _knob(1.0, ge=0)
    weight_late: float = _knob(1.0, ge=0)
    reroute_cost: float = _knob(12.0, ge=0)
    late_cost_per_day: float = _knob(6.0, ge=0)
    late_penalty: float = _knob(20.0, ge=0)
    per_shipment_cost: float = _knob(3.0, ge=0)
    max_shipments: int | None = _knob(None, ge=1)
    never_split: bool = _knob(False)
    split_value_threshold: float = _knob(0.0, ge=0)
    max_distance_km: float | None = _knob(None, gt=0)
    safety_stock: float = _knob(0.0, ge=0)
    promise_days: float = _knob(5.0, gt=0)
    load_knee: float = _knob(1.0, gt=0, le=1)
    congestion_cost: float = _knob(10.0, ge=0)

    def zone(self, distance_km: float | None) -> tuple[float, float, float]:
        d = self.unknown_distance_km if distance_km is None else distance_km
        for z in self.zones:
            if d <= z[0]:
                return z
        return self.zones[-1]


#: The per-group knobs, in declaration order.
KNOBS: tuple[str, ...] = tuple(f.name for f in fields(GroupRules) if f.default is not MISSING)
_KNOB_FIELDS = {f.name: f for f in fields(GroupRules) if f.name in KNOBS}
_KNOB_TYPES = get_type_hints(GroupRules)
#: Knobs the ``defaults`` block must set (those whose built-in default is not null).
_REQUIRED = tuple(k for k in KNOBS if _KNOB_FIELDS[k].default is not None)

if TYPE_CHECKING:

    class GroupPolicy(_Strict):
        """Per product-group knobs; every field left out inherits from ``defaults``."""

        def __getattr__(self, name: str) -> Any: ...

else:
    GroupPolicy = create_model(
        "GroupPolicy",
        __base__=_Strict,
        __doc__="Per product-group knobs; every field left out inherits from ``defaults``.",
        __module__=__name__,
        **{
            k: (_KNOB_TYPES[k] | None, Field(default=None, **_KNOB_FIELDS[k].metadata))
            for k in KNOBS
        },
    )


def _default_groups() -> GroupPolicy:
    return GroupPolicy(**{k: _KNOB_FIELDS[k].default for k in KNOBS})


class SafetyStock(_Strict):
    """Units a node keeps back: for one group (or all when ``group`` is null)."""

    node: str
    group: str | None = None
    qty: float = Field(..., ge=0)


class SearchLimits(_Strict):
    """Where exact search stops and bounded search starts."""

    exact_max_lines: int = Field(default=12, ge=1)
    max_states: int = Field(default=200_000, ge=100, description="exact search budget")
    bounded_states: int = Field(default=5_000, ge=10, description="budget beyond exact_max_lines")
    split_candidates: int = Field(
        default=6, ge=2, description="cheapest nodes combined in split options"
    )
    max_parts_per_line: int = Field(default=2, ge=2, le=4)
    local_search_rounds: int = Field(default=4, ge=0)


class ShadowPolicy(_Strict):
    """A second routing mode computed beside every live decision, never reserved: how a new
    optimiser would have decided, logged before anyone switches to it."""

    mode: Mode = Field(..., description="routing mode of the shadow plan")


DEFAULT_CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)


class ChannelPolicy(_Strict):
    """What one sales channel may use and how strictly it ships."""

    node_types: list[Literal["dc", "store", "3pl"]] | None = Field(
        default=None, description="node types this channel may ship from; null = all"
    )
    promise_buffer_days: float = Field(
        default=0.0,
        ge=0,
        description="aim this many days inside the promise (late costs start earlier)",
    )
    max_shipments: int | None = Field(default=None, ge=1, description="per order of this channel")
    never_split: bool = Field(default=False, description="no line of this channel splits")
    screening: ScreeningRules | None = Field(
        default=None, description="replaces the policy-wide screening rules for this channel"
    )


def _default_zones() -> list[ZoneBand]:
    return [
        ZoneBand(max_km=150, per_parcel=4.0, per_kg=0.25),
        ZoneBand(max_km=600, per_parcel=5.5, per_kg=0.45),
        ZoneBand(max_km=1500, per_parcel=7.0, per_kg=0.7),
        ZoneBand(max_km=None, per_parcel=9.0, per_kg=1.0),
    ]


class Policy(_Strict):
    """The whole routing policy. ``Policy.default()`` is what runs when none is given."""

    version: str = POLICY_VERSION
    defaults: GroupPolicy = Field(default_factory=_default_groups)
    groups: dict[str, GroupPolicy] = Field(default_factory=dict)
    channel_names: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS),
        min_length=1,
        description="the channel vocabulary: an order naming another channel is refused",
    )
    channels: dict[str, ChannelPolicy] = Field(
        default_factory=dict,
        description="per-channel policy (a bare list means allowed node types); absent = defaults",
    )
    max_shipments: int | None = Field(default=None, ge=1, description="per order, over all groups")
    screening: ScreeningRules = Field(
        default_factory=ScreeningRules, description="rules that hold an order before release"
    )
    returns: ReturnsPolicy = Field(default_factory=ReturnsPolicy)
    allow_partial: bool = False
    allow_line_split: bool = True
    never_split_skus: list[str] = Field(default_factory=list)
    never_split_groups: list[str] = Field(default_factory=list)
    ship_together_groups: list[str] = Field(default_factory=list)
    safety_stock: list[SafetyStock] = Field(default_factory=list)
    capacity: Literal["fence", "penalise"] = "fence"
    capacity_penalty: float = Field(default=25.0, ge=0)
    require_open_now: bool = False
    zones: list[ZoneBand] = Field(default_factory=_default_zones)
    unknown_distance_km: float = Field(default=1500.0, gt=0)
    delivery_rule: DeliveryRule = Field(default_factory=DeliveryRule)
    carrier_calendar: CarrierCalendar = Field(default_factory=CarrierCalendar)
    search: SearchLimits = Field(default_factory=SearchLimits)
    shadow: ShadowPolicy | None = Field(
        default=None, description="shadow mode: plan each order a second way; null = off"
    )

    _rules: dict[str | None, GroupRules] = PrivateAttr(default_factory=dict)
    _safety: dict[tuple[str, str | None], float] = PrivateAttr(default_factory=dict)
    _never_split_skus: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("defaults", mode="before")
    @classmethod
    def _overlay_defaults(cls, v: Any) -> Any:
        """A partial ``defaults`` block overrides the built-in defaults field by field."""
        if isinstance(v, dict):
            return {**_default_groups().model_dump(), **v}
        return v

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_shorthand(cls, v: Any) -> Any:
        """``pos: [store]`` is short for ``pos: {node_types: [store]}``."""
        if isinstance(v, dict):
            return {k: {"node_types": c} if isinstance(c, list) else c for k, c in v.items()}
        return v

    @model_validator(mode="after")
    def _check(self) -> Policy:
        unknown = sorted(set(self.channels) - set(self.channel_names))
        if unknown:
            raise ValueError(
                f"channels: {unknown} are not in channel_names {self.channel_names}; add them there"
            )
        missing = [k for k, v in self.defaults.model_dump().items() if v is None and k in _REQUIRED]
        if missing:
            raise ValueError(f"defaults must set {', '.join(missing)}")
        bounds = [z.max_km for z in self.zones]
        if not bounds or bounds[-1] is not None:
            raise ValueError("zones: the last band must have max_km null (no bound)")
        finite = [b for b in bounds[:-1] if b is not None]
        if (
            len(finite) != len(bounds) - 1
            or finite != sorted(finite)
            or len(set(finite)) != len(finite)
        ):
            raise ValueError("zones: max_km must increase strictly; only the last may be null")
        return self

    def model_post_init(self, __context: Any) -> None:
        self._safety = {(s.node, s.group): s.qty for s in self.safety_stock}
        self._never_split_skus = frozenset(s.casefold() for s in self.never_split_skus)

    @classmethod
    def default(cls) -> Policy:
        return _DEFAULT

    def rules(self, group: str | None) -> GroupRules:
        """Resolved knobs for a product group (defaults overlaid by the group's overrides)."""
        r = self._rules.get(group)
        if r is None:
            merged = self.defaults.model_dump()
            if group is not None and group in self.groups:
                merged.update(
                    {k: v for k, v in self.groups[group].model_dump().items() if v is not None}
                )
            if group is not None and group in self.never_split_groups:
                merged["never_split"] = True
            caps = [c for c in (merged["max_shipments"], self.max_shipments) if c is not None]
            r = GroupRules(
                **{k: merged[k] for k in KNOBS if k != "max_shipments"},
                max_shipments=min(caps) if caps else None,
                ship_together=group is not None and group in self.ship_together_groups,
                zones=tuple(
                    (math.inf if z.max_km is None else z.max_km, z.per_parcel, z.per_kg)
                    for z in self.zones
                ),
                unknown_distance_km=self.unknown_distance_km,
                base_days=self.delivery_rule.base_days,
                km_per_day=self.delivery_rule.km_per_day,
                p90_ratio=self.delivery_rule.p90_ratio,
            )
            self._rules[group] = r
        return r

    def safety_map(self) -> dict[tuple[str, str | None], float]:
        """(node, group) -> units kept back; group ``None`` applies to every group."""
        return self._safety

    def safety_stock_for(self, node_id: str, group: str | None) -> float:
        """Node+group entry, else node-wide entry, else the group's default."""
        s = self._safety
        if s:
            v = s.get((node_id, group))
            if v is None:
                v = s.get((node_id, None))
            if v is not None:
                return v
        return self.rules(group).safety_stock

    def sku_never_splits(self, sku: str) -> bool:
        return sku.casefold() in self._never_split_skus

    def allowed_types(self, channel: str) -> frozenset[str] | None:
        t = self.channel(channel).node_types
        return None if t is None else frozenset(t)

    def channel(self, name: str) -> ChannelPolicy:
        """The channel's policy (defaults when the policy says nothing about it)."""
        return self.channels.get(name) or _NO_CHANNEL_RULES

    def screening_for(self, channel: str) -> ScreeningRules:
        """The channel's own screening rules, else the policy-wide ones."""
        return self.channel(channel).screening or self.screening

    def knows_channel(self, name: str) -> bool:
        return name in self.channel_names

    def zone(self, distance_km: float) -> ZoneBand:
        for z in self.zones:
            if z.max_km is None or distance_km <= z.max_km:
                return z
        return self.zones[-1]  # pragma: no cover - the validator guarantees a null last band


def policy_from_dict(doc: dict[str, Any] | None) -> Policy:
    """Validate a policy document (parsed YAML/JSON); errors name the field."""
    if doc is None:
        return Policy.default()
    if not isinstance(doc, dict):
        raise InvalidPolicy("a policy must be a mapping at the top level")
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<policy>"
            parts.append(f"{loc}: {err['msg']}")
        raise InvalidPolicy("invalid policy: " + "; ".join(parts)) from None


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """JSON-ready form; round-trips through ``policy_from_dict``."""
    return policy.model_dump(mode="json")


_NO_CHANNEL_RULES = ChannelPolicy()
_DEFAULT = Policy()
assert math.isfinite(_DEFAULT.capacity_penalty)
