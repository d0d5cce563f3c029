"""Node calendars: planned closures, weekly opening hours and holidays in the node's time zone.

A closed node is never chosen, so the check runs for every candidate node; it is kept to a
few comparisons on values converted once when the calendar is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: How far ahead a ship day is searched before the node counts as closed indefinitely.
MAX_SHIP_SEARCH_DAYS = 366

#: Dates a calendar (or any timestamp the service stores) may name. Far dates overflow
#: time-zone arithmetic (year 9999 at -14:00 is past ``datetime.max`` in UTC).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
#: Closures per calendar: each is checked for every candidate node of every order.
MAX_CLOSURES = 100
MAX_HOLIDAYS = 1000


def within_bounds(value: datetime | date) -> bool:
    """Whether ``value`` lies in [EARLIEST, LATEST]; naive times are read as UTC for this."""
    if not isinstance(value, datetime):
        return EARLIEST.date() <= value <= LATEST.date()
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return EARLIEST <= aware <= LATEST


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """Cached ``ZoneInfo``; an unknown zone is an input error, not a silent UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True, slots=True)
class Closure:
    """A planned closure ``[start, end)``; naive datetimes are read in the node's time zone."""

    start: datetime
    end: datetime
    reason: str = "planned closure"


@dataclass(frozen=True, slots=True)
class NodeCalendar:
    """When a node works. ``weekly_hours=None`` means every day, all day."""

    weekly_hours: tuple[tuple[tuple[time, time], ...], ...] | None = None  # index 0 = Monday
    holidays: frozenset[date] = frozenset()
    closures: tuple[Closure, ...] = field(default_factory=tuple)
    #: last local time an order still ships the same day; ``None`` = the day's closing time
    cutoff: time | None = None

    def cutoff_on(self, day: date, tz_name: str) -> datetime | None:
        """The instant of ``day``'s cut-off at the node, or ``None`` when it ships nothing
        that day (holiday, no opening hours, or a closure covering the cut-off)."""
        if day in self.holidays:
            return None
        hours = None if self.weekly_hours is None else self.weekly_hours[day.weekday()]
        if hours is not None and not hours:
            return None
        closing = time.max if hours is None else max(b for _, b in hours)
        local = self.cutoff if self.cutoff is not None and self.cutoff < closing else closing
        tz = zone(tz_name)
        at = datetime.combine(day, local, tzinfo=tz)
        at = at.astimezone(tz)  # normalises a wall time skipped by a DST change
        for c in self.closures:
            start = c.start if c.start.tzinfo else c.start.replace(tzinfo=tz)
            end = c.end if c.end.tzinfo else c.end.replace(tzinfo=tz)
            if start <= at < end:
                return None
        return at

    def next_cutoff(self, now: datetime, tz_name: str) -> datetime:
        """When an order placed at ``now`` leaves: the first cut-off still ahead on an open
        day (after the cut-off or on a closed day it waits for the next open day)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        day = now.astimezone(zone(tz_name)).date()
        for k in range(MAX_SHIP_SEARCH_DAYS):
            at = self.cutoff_on(day + timedelta(days=k), tz_name)
            if at is not None and at > now:
                return at
        raise ValueError(f"the calendar ships nothing in the next {MAX_SHIP_SEARCH_DAYS} days")

    def status(self, now: datetime, tz_name: str, *, require_open_now: bool) -> str | None:
        """``None`` when the node can take the order at ``now``, else a human reason."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        tz = zone(tz_name)
        local = now.astimezone(tz)
        for c in self.closures:
            start = c.start if c.start.tzinfo else c.start.replace(tzinfo=tz)
            end = c.end if c.end.tzinfo else c.end.replace(tzinfo=tz)
            if start <= now < end:
                return f"{c.reason} until {end.astimezone(tz).isoformat(timespec='minutes')}"
        today = local.date()
        if today in self.holidays:
            return f"holiday on {today.isoformat()}"
        if self.weekly_hours is None:
            return None
        hours = self.weekly_hours[local.weekday()]
        if not hours:
            return f"closed on {WEEKDAYS[local.weekday()]}"
        if require_open_now:
            t = local.time().replace(tzinfo=None)
            if not any(a <= t < b for a, b in hours):
                spans = ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in hours)
                return f"outside opening hours ({spans} {tz_name}) at {t:%H:%M}"
        return None


def _parse_time(text: str) -> time:
    if text in ("24:00", "24:00:00"):
        return time.max
    return time.fromisoformat(text)


def calendar_from_dict(doc: dict[str, object]) -> NodeCalendar:
    """Build a calendar from its JSON form (see docs/formats.md)."""
    weekly: tuple[tuple[tuple[time, time], ...], ...] | None = None
    raw_hours = doc.get("weekly_hours")
    if raw_hours is not None:
        if not isinstance(raw_hours, dict):
            raise ValueError("weekly_hours must map mon..sun to lists of 'HH:MM-HH:MM'")
        unknown = set(raw_hours) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"weekly_hours has unknown days {sorted(unknown)}")
        days: list[tuple[tuple[time, time], ...]] = []
        for day in WEEKDAYS:
            spans = []
            for span in raw_hours.get(day) or []:
                a, _, b = str(span).partition("-")
                start, end = _parse_time(a.strip()), _parse_time(b.strip())
                if not start < end:
                    raise ValueError(f"weekly_hours.{day}: {span!r} must open before it closes")
                spans.append((start, end))
            days.append(tuple(spans))
        weekly = tuple(days)
    raw_holidays = doc.get("holidays") or []
    raw_closures = doc.get("closures") or []
    if not isinstance(raw_holidays, list) or not isinstance(raw_closures, list):
        raise ValueError("holidays and closures must be lists")
    if len(raw_closures) > MAX_CLOSURES or len(raw_holidays) > MAX_HOLIDAYS:
        raise ValueError(
            f"a calendar holds at most {MAX_CLOSURES} closures and {MAX_HOLIDAYS} holidays"
        )
    holidays = frozenset(date.fromisoformat(str(d)) for d in raw_holidays)
    raw_cutoff = doc.get("cutoff")
    cutoff = None if raw_cutoff in (None, "") else _parse_time(str(raw_cutoff))
    if not all(within_bounds(d) for d in holidays):
        raise ValueError(f"holidays must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    closures = []
    for i, c in enumerate(raw_closures):
        if not isinstance(c, dict) or "start" not in c or "end" not in c:
            raise ValueError(f"closures[{i}] needs start and end")
        begin = datetime.fromisoformat(str(c["start"]))
        until = datetime.fromisoformat(str(c["end"]))
        if (begin.tzinfo is None) != (until.tzinfo is None):
            raise ValueError(f"closures[{i}]: give both ends with or both without an offset")
        if not (within_bounds(begin) and within_bounds(until)):
            raise ValueError(f"closures[{i}]: dates must lie between {EARLIEST:%Y} and {LATEST:%Y}")
        if not begin < until:
            raise ValueError(f"closures[{i}]: start must be before end")
        closures.append(Closure(begin, until, str(c.get("reason") or "planned closure")))
    return NodeCalendar(
        weekly_hours=weekly, holidays=holidays, closures=tuple(closures), cutoff=cutoff
    )
