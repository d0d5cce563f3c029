"""Fixtures for the routing tests."""

from __future__ import annotations

from datetime import datetime

import pytest
from routing_helpers import NOW


@pytest.fixture
def now() -> datetime:
    return NOW
