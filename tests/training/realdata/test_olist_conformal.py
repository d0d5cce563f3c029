"""The Olist P90 correction learned on the held-out slice is the one the refit ships."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.realdata.olist_eval import FEATURES, LEVEL, OlistDeliveryModel, OlistSettings


def _drifting_frame(n: int = 1600, days: int = 200, seed: int = 3) -> pd.DataFrame:
    """Delivery days whose last six weeks are 1.6x slower than anything the features say."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2017-06-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, days, n)), unit="D"
    )
    frame = pd.DataFrame({f: rng.normal(size=n) for f in FEATURES})
    frame["distance_km"] = rng.uniform(10, 2000, n)
    frame[LEVEL] = 10.0
    slow = ts >= ts.max() - pd.Timedelta(days=42)
    frame["label"] = 10.0 * rng.gamma(6.0, 1 / 6.0, n) * np.where(slow, 1.6, 1.0)
    frame["event_timestamp"] = ts
    return frame


@pytest.mark.parametrize("base", ["p90", "p50"])
def test_slow_held_out_slice_widens_the_shipped_p90(base: str) -> None:
    frame = _drifting_frame()
    settings = OlistSettings(conformal_base=base, conformal_half_life=None)  # type: ignore[arg-type]
    model = OlistDeliveryModel(settings).fit(frame)
    # The raw P90 learned mostly from normal weeks undercovers the slow slice, so the
    # correction must be a real widening (it was ~1 when measured on an already-shifted P90).
    if base == "p90":
        assert model.conformal_.correction_ > 1.2
    assert model.validation_["p90_coverage"] >= 0.9
    p50, p90 = model.predict(frame)
    raw50, raw90 = model._raw(model.model_, frame)
    expected = (raw90 if base == "p90" else raw50) * model.conformal_.correction_
    assert np.allclose(p90, np.maximum(expected, p50))
