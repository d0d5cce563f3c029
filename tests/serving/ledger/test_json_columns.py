"""JSON columns written with the ledger's serializer read back exactly what ``json.dumps``
would have stored: floats to the last digit, non-ASCII text, nesting (and the serializer
writes NaN and infinities as ``json.dumps`` does)."""

from __future__ import annotations

import json
import math

from serving.ledger import Ledger
from serving.ledger.db import dumps_json

VALUE = {
    "f": [0.1, 1 / 3, 1e-7, 1e16, 123456789.123456789, -0.0],
    "s": 'São Paulo ✓ \t "q" \\',
    "n": {"deep": [{"x": 1, "y": None, "z": True}]},
    "big": 2**62,
    "special": [math.inf, -math.inf],
}


def test_same_values_as_json_dumps() -> None:
    assert json.loads(dumps_json(VALUE)) == json.loads(json.dumps(VALUE))
    nan = json.loads(dumps_json({"nan": math.nan}))["nan"]
    assert math.isnan(nan)


def test_round_trip_through_the_ledger(ledger: Ledger) -> None:
    plan = {k: v for k, v in VALUE.items() if k != "special"}  # PostgreSQL's JSON has no inf
    ledger.reserve_order("o-json", [("1", "dc1", "A", 1)], request_hash="h", plan=plan)
    assert ledger.get_order("o-json").plan == json.loads(json.dumps(plan))
