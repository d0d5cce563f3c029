"""Postal code → coordinates and region, from the offline US ZIP table (indexed in the background)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import zipcodes

from routing.calendar import zone
from serving.problems import UnresolvableDestination
from serving.schemas.order import Destination


@dataclass(frozen=True, slots=True)
class Located:
    lat: float
    lon: float
    region: str | None
    timezone: str | None = None


def _zone_or_none(name: str | None) -> str | None:
    """The table's zone name if the zone database knows it (a few rows hold a place name)."""
    if not name:
        return None
    try:
        zone(name)
    except ValueError:
        return None
    return name


def _located(row: dict[str, Any]) -> Located:
    return Located(
        float(row["lat"]), float(row["long"]), row["state"], _zone_or_none(row.get("timezone"))
    )


@lru_cache(maxsize=1)
def zip_index() -> dict[str, Located]:
    """Every ZIP of the table (about 2-3 s to build: 42,000 rows): built off the request path
    (``warm_in_background``); until then ``find_zip`` asks the table one code at a time."""
    index: dict[str, Located] = {}
    rows: list[dict[str, Any]] = zipcodes.list_all()  # type: ignore[no-untyped-call]
    for z in rows:
        try:
            index[z["zip_code"]] = _located(z)
        except (KeyError, TypeError, ValueError):
            continue
    return index


@lru_cache(maxsize=8192)
def _one_zip(code: str) -> Located | None:
    """One code from the table (about a millisecond); the last valid row wins, as in the index."""
    try:
        rows: list[dict[str, Any]] = zipcodes.matching(code)  # type: ignore[no-untyped-call]
    except (TypeError, ValueError):  # not a 5-digit code
        return None
    found = None
    for z in rows:
        try:
            found = _located(z)
        except (KeyError, TypeError, ValueError):
            continue
    return found


def find_zip(code: str) -> Located | None:
    """The ZIP's place: from the index once it is built, else straight from the table."""
    if zip_index.cache_info().currsize:
        return zip_index().get(code)
    return _one_zip(code)


def warm_in_background() -> threading.Thread:
    """Build the ZIP index on a thread, so start-up does not wait for it."""
    thread = threading.Thread(target=zip_index, name="routecast-zip-index", daemon=True)
    thread.start()
    return thread


def locate(dest: Destination) -> Located:
    """Coordinates from the order when given, the region from the postal code when known."""
    found = None
    if dest.postal_code and dest.country.upper() == "US":
        found = find_zip(dest.postal_code.strip()[:5].zfill(5))
    region = dest.region or (found.region if found else None)
    tz = dest.timezone or (found.timezone if found else None)
    if dest.lat is not None and dest.lon is not None:
        return Located(dest.lat, dest.lon, region, tz)
    if found is None:
        raise UnresolvableDestination(
            f"postal code {dest.postal_code!r} ({dest.country}) is not known; "
            "send destination.lat and destination.lon",
            field="destination.postal_code",
        )
    return Located(found.lat, found.lon, region, tz)
