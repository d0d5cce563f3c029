"""Postal code → coordinates and region, from the offline US ZIP table, indexed once at start."""

from __future__ import annotations

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


@lru_cache(maxsize=1)
def zip_index() -> dict[str, Located]:
    index: dict[str, Located] = {}
    rows: list[dict[str, Any]] = zipcodes.list_all()  # type: ignore[no-untyped-call]
    for z in rows:
        try:
            index[z["zip_code"]] = Located(
                float(z["lat"]), float(z["long"]), z["state"], _zone_or_none(z.get("timezone"))
            )
        except (KeyError, TypeError, ValueError):
            continue
    return index


def locate(dest: Destination) -> Located:
    """Coordinates from the order when given, the region from the postal code when known."""
    found = None
    if dest.postal_code and dest.country.upper() == "US":
        found = zip_index().get(dest.postal_code.strip()[:5].zfill(5))
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
