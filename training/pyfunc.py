"""MLflow pyfunc wrappers: ``predict`` returns probabilities / quantiles, not labels.

Serving loads them by alias and calls ``unwrap_python_model().model.predict_array`` so the
request path skips pandas; other MLflow consumers use the ordinary pyfunc ``predict``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from training.models import DeliveryQuantileModel, StockoutRiskModel


class StockoutRiskPyfunc(PythonModel):  # type: ignore[misc]
    def __init__(self, model: StockoutRiskModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return pd.DataFrame({"p_stockout": self.model.predict_proba(model_input)})


class DeliveryDaysPyfunc(PythonModel):  # type: ignore[misc]
    def __init__(self, model: DeliveryQuantileModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        p50, p90 = self.model.predict_quantiles(model_input)
        return pd.DataFrame({"days_p50": p50, "days_p90": p90})
