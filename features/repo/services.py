"""One feature service per model, holding the model's stored and on-demand inputs.

Request-time inputs (``qty``, ``weekday``) are not in the store: they are columns of the
entity frame in training and fields of the order in serving.
"""

from __future__ import annotations

from feast import FeatureService, FeatureView, OnDemandFeatureView

from features import catalog


def _projections(
    wanted: tuple[str, ...], views: list[FeatureView | OnDemandFeatureView]
) -> list[object]:
    """Each view projected onto the wanted features it holds, in catalogue order."""
    projections: list[object] = []
    for view in views:
        names = [f.name for f in view.features]
        chosen = [w for w in wanted if w in names]
        if chosen:
            projections.append(view[chosen])
    return projections


def feature_services(
    views: dict[str, FeatureView], distance: OnDemandFeatureView
) -> list[FeatureService]:
    ordered: list[FeatureView | OnDemandFeatureView] = [*views.values(), distance]
    return [
        FeatureService(
            name=catalog.SERVICE_STOCKOUT,
            features=_projections(catalog.STOCKOUT_FEATURES, ordered),  # type: ignore[arg-type]
            description="Inputs of the stockout (rejection) risk model.",
        ),
        FeatureService(
            name=catalog.SERVICE_DELIVERY,
            features=_projections(catalog.DELIVERY_FEATURES, ordered),  # type: ignore[arg-type]
            description="Inputs of the delivery-days model.",
        ),
    ]


def stored_features(service: str) -> tuple[str, ...]:
    """The catalogue features a service provides (model inputs minus request-time ones)."""
    wanted = (
        catalog.STOCKOUT_FEATURES
        if service == catalog.SERVICE_STOCKOUT
        else catalog.DELIVERY_FEATURES
    )
    if service not in (catalog.SERVICE_STOCKOUT, catalog.SERVICE_DELIVERY):
        raise KeyError(f"unknown feature service {service!r}")
    return tuple(f for f in wanted if f not in catalog.REQUEST)
