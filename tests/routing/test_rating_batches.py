"""Lines rated in one pass (per-pair weights and promises) equal each line rated alone."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import policy_from_dict
from routing.ratings import rate_line

PAIR = st.tuples(
    st.one_of(st.none(), st.floats(0, 5000)),  # distance
    st.floats(0, 5),  # handling cost
    st.one_of(st.none(), st.tuples(st.floats(-0.5, 1.5), st.floats(0, 9), st.floats(0, 12))),
    st.sampled_from([0.0, 0.4, 2.5]),  # queue days
)
LINE = st.tuples(
    st.lists(PAIR, min_size=1, max_size=6),
    st.sampled_from([-1.0, 0.0, 0.5, 3.0, 5.0]),  # promise
    st.floats(0, 30),  # weight
)


def _columns(pairs: list[Any]) -> dict[str, Any]:
    preds = [p for _, _, p, _ in pairs]
    return {
        "handling_cost": np.array([h for _, h, _, _ in pairs], dtype=np.float64),
        "distance_km": np.array([np.nan if d is None else d for d, _, _, _ in pairs]),
        "predicted": np.array([p is not None for p in preds]),
        "p_stockout": np.array([p[0] if p else 0.0 for p in preds]),
        "days_p50": np.array([p[1] if p else 0.0 for p in preds]),
        "days_p90": np.array([p[2] if p else 0.0 for p in preds]),
        "queue": np.array([w for _, _, _, w in pairs], dtype=np.float64),
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=4))
def test_lines_rated_together_equal_lines_rated_alone(lines: list[Any]) -> None:
    rules = policy_from_dict(None).rules(None)
    alone = [
        rate_line(weight_kg=w, rules=rules, promise_days=p, **_columns(pairs))
        for pairs, p, w in lines
    ]
    sizes = [len(pairs) for pairs, _, _ in lines]
    together = rate_line(
        weight_kg=np.repeat([w for _, _, w in lines], sizes).astype(np.float64),
        rules=rules,
        promise_days=np.repeat([p for _, p, _ in lines], sizes).astype(np.float64),
        **_columns([pair for pairs, _, _ in lines for pair in pairs]),
    )
    for key, column in together.items():
        want = np.concatenate([a[key] for a in alone])
        assert column.tolist() == want.tolist(), key
