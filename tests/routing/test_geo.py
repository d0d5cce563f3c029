"""The one great-circle formula: vectorised, broadcasting, equal to the textbook haversine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.geo import EARTH_RADIUS_KM, haversine_km

LAT, LON = st.floats(-89, 89), st.floats(-179, 179)


def _textbook(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@given(LAT, LON, LAT, LON)
def test_scalar_call_matches_the_textbook_formula(a: float, b: float, c: float, d: float) -> None:
    assert float(haversine_km(a, b, c, d)) == pytest.approx(_textbook(a, b, c, d), abs=1e-6)


@settings(max_examples=30)
@given(st.lists(st.tuples(LAT, LON), min_size=1, max_size=30), LAT, LON)
def test_vectorised_call_equals_one_call_per_row(
    points: list[tuple[float, float]], dest_lat: float, dest_lon: float
) -> None:
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    km = haversine_km(lat, lon, dest_lat, dest_lon)
    assert km.shape == (len(points),)
    expected = [float(haversine_km(p[0], p[1], dest_lat, dest_lon)) for p in points]
    np.testing.assert_allclose(km, expected, rtol=0, atol=1e-9)


def test_known_distance_and_symmetry() -> None:
    nyc, la = (40.7128, -74.0060), (34.0522, -118.2437)
    km = float(haversine_km(*nyc, *la))
    assert 3930 < km < 3950  # about 3,936 km great-circle
    assert float(haversine_km(*la, *nyc)) == pytest.approx(km)
    assert float(haversine_km(*nyc, *nyc)) == 0.0
