"""Postal codes resolve the same before the ZIP index is built (one code at a time from the
table) as after (the index), so start-up need not wait for the index."""

from __future__ import annotations

import random

import pytest

from serving.destinations import _one_zip, find_zip, zip_index
from serving.problems import UnresolvableDestination
from serving.schemas.order import Destination


def test_one_code_at_a_time_matches_the_index() -> None:
    index = zip_index()
    codes = [*random.Random(3).sample(sorted(index), 300), "10001", "94105", "00501"]
    for code in codes:
        assert _one_zip(code) == index[code], code
    for unknown in ("00000", "99999", "ABCDE", ""):
        assert _one_zip(unknown) is None and index.get(unknown) is None


def test_find_zip_answers_before_and_after_the_index_is_built() -> None:
    zip_index.cache_clear()
    before = find_zip("60601")
    assert zip_index.cache_info().currsize == 0  # answered without building the index
    assert before == zip_index()["60601"] == find_zip("60601")


def test_an_unknown_code_without_coordinates_is_refused_naming_the_field() -> None:
    from serving.destinations import locate

    with pytest.raises(UnresolvableDestination) as exc:
        locate(Destination(country="US", postal_code="00000"))
    assert exc.value.extra["field"] == "destination.postal_code"
