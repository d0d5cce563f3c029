"""One decision: validate against the catalogue, score candidates, call ``routing``.

No decision logic lives here; this is the glue between HTTP, features, models and routing.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np

from features import catalog
from routing import (
    Mode,
    Network,
    Order,
    OrderLine,
    PredictionArrays,
    plan_to_dict,
    reroute_order,
    route,
)
from routing.fences import LineCandidates, evaluate
from serving.destinations import Located, locate
from serving.feature_snapshot import FeatureSnapshot
from serving.metrics import record_decision
from serving.problems import (
    BadRequestMode,
    ConflictingPreferences,
    NoShipmentBudget,
    NotReady,
    TooManyLines,
    UnknownChannel,
    UnknownPickupNode,
    UnknownSku,
)
from serving.promises import promise_for
from serving.runtime import Runtime
from serving.schemas.order import OrderIn
from serving.scoring import score_rows
from serving.shadow import ShadowJob

log = logging.getLogger("routecast.decisions")


def to_order(body: OrderIn, runtime: Runtime, where: Located | None = None) -> Order:
    if len(body.lines) > runtime.settings.max_order_lines:
        raise TooManyLines(
            f"{len(body.lines)} lines; at most {runtime.settings.max_order_lines} per order",
            field="lines",
        )
    policy = runtime.policy
    if not policy.knows_channel(body.channel):
        raise UnknownChannel(
            f"channel {body.channel!r} is not one of {policy.channel_names}; "
            "use one of them or add it to the policy's channel_names",
            field="channel",
        )
    if body.ship_complete and body.allow_partial:
        raise ConflictingPreferences(
            "ship_complete asks for every line in one shipment, so the order cannot be partial; "
            "drop allow_partial or ship_complete",
            field="ship_complete",
        )
    if body.pickup_node_id is not None and body.pickup_node_id not in {
        n.node_id for n in runtime.nodes
    }:
        raise UnknownPickupNode(
            f"pickup_node_id {body.pickup_node_id!r} is not a node; GET /v1/nodes lists them",
            field="pickup_node_id",
        )
    lines = []
    for i, line in enumerate(body.lines):
        rec = runtime.skus.get(line.sku.upper())
        if rec is None:
            raise UnknownSku(
                f"SKU {line.sku!r} is not in the catalogue; GET /v1/skus lists known SKUs",
                field=f"lines.{i}.sku",
            )
        lines.append(
            OrderLine(
                line_id=line.line_id,
                sku=rec.sku,
                qty=line.qty,
                product_group=rec.product_group,
                weight_kg=rec.weight_kg,
                unit_price=rec.price,
            )
        )
    where = where or locate(body.destination)
    return Order(
        order_id=body.order_id,
        channel=body.channel,
        dest_lat=where.lat,
        dest_lon=where.lon,
        lines=tuple(lines),
        dest_region=where.region,
        pickup_node_id=body.pickup_node_id,
        allow_partial=body.allow_partial,
        promise_days=body.promise_days,
        ship_complete=body.ship_complete,
        max_shipments=body.max_shipments,
    )


def predict(
    order: Order,
    network: Network,
    runtime: Runtime,
    now: datetime,
    candidates: list[LineCandidates] | None = None,
) -> tuple[PredictionArrays | None, list[str], datetime | None]:
    """Model predictions for every candidate pair in one batch, or ``None`` with the reasons
    the models cannot run (then the caller routes in ``cost`` mode); and the event time of
    the oldest feature row the candidates read (stale rows degrade the answer too).
    ``candidates``: the order's fenced candidates when the caller has them already."""
    reasons = runtime.degraded_reasons(now)
    stock_m, deliv_m = runtime.models.get("stockout"), runtime.models.get("delivery")
    snapshot = runtime.snapshot
    if reasons or stock_m is None or deliv_m is None or snapshot is None:
        return None, reasons, None
    lcs = candidates if candidates is not None else evaluate(order, network, runtime.policy, now)
    #: per line: its id, SKU, qty and eligible nodes' ids (the list ``route`` compares with)
    lines = [(lc.line.line_id, lc.line.sku, float(lc.line.qty), lc.eligible_ids) for lc in lcs]
    rows = snapshot.locate_at(
        [(lc.line.sku, snapshot.positions_for(lc.cols.ids)[lc.eligible_nodes]) for lc in lcs],
        order.dest_region,
    )
    as_of = snapshot.oldest_of(rows)
    bound = runtime.settings.feature_staleness_hours
    if as_of is not None and (now - as_of).total_seconds() > bound * 3600:
        age = round((now - as_of).total_seconds() / 3600, 1)
        return None, [f"features this order reads are {age} h old (bound {bound} h)"], as_of
    assert order.dest_lat is not None and order.dest_lon is not None
    sizes = [len(ids) for *_, ids in lines]
    p_stock, p50, p90 = score_rows(
        rows,
        np.repeat(np.fromiter((q for _, _, q, _ in lines), float, len(lines)), sizes),
        snapshot,
        stockout_model=stock_m.model,
        delivery_model=deliv_m.model,
        dest_lat=order.dest_lat,
        dest_lon=order.dest_lon,
        weekday=now.weekday(),
        memo=runtime.settings.score_memo,
    )
    predictions = PredictionArrays()
    a = 0
    for (line_id, _, _, ids), size in zip(lines, sizes, strict=True):
        b = a + size
        predictions.add(line_id, ids, p_stock[a:b], p50[a:b], p90[a:b])
        a = b
    return predictions, reasons, as_of


def stock_features(
    allocations: list[dict[str, Any]], snapshot: FeatureSnapshot | None
) -> list[dict[str, Any]]:
    """The live node×SKU features (``catalog.LIVE_NODE_SKU``) of each allocated pair as the
    decision read them: what the ledger said about the stock it chose."""
    if snapshot is None:
        return []
    out: list[dict[str, Any]] = []
    for node_id, sku in dict.fromkeys((a["node_id"], a["sku"]) for a in allocations):
        row = snapshot.node_sku_row(node_id, sku)
        if row is not None:
            out.append(
                {"node_id": node_id, "sku": sku, **{c: row[c] for c in catalog.LIVE_NODE_SKU}}
            )
    return out


def decide(
    body: OrderIn,
    runtime: Runtime,
    *,
    now: datetime | None = None,
    exclude: frozenset[str] = frozenset(),
    shipped_nodes: frozenset[str] = frozenset(),
    explain: bool = True,
) -> dict[str, Any]:
    """Route one order against live ledger availability; returns the JSON-ready answer.

    ``exclude`` names nodes that already rejected this order (reroute); ``shipped_nodes``
    the nodes that already shipped parcels of it (they use up its shipment budget);
    ``explain=False`` leaves the candidate ranking out of the answer (``routing.route``).
    """
    with runtime.shadow.live():  # shadow plans wait while a live decision runs
        return _decide(
            body,
            runtime,
            now=now,
            exclude=exclude,
            shipped_nodes=shipped_nodes,
            explain=explain,
        )


def _decide(
    body: OrderIn,
    runtime: Runtime,
    *,
    now: datetime | None,
    exclude: frozenset[str],
    shipped_nodes: frozenset[str] = frozenset(),
    explain: bool = True,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    now = now or runtime.clock()
    if not runtime.nodes:
        raise NotReady("no fulfilment nodes are loaded; run `routecast demo` or load nodes")
    where = locate(body.destination)
    order = to_order(body, runtime, where)
    if exclude or shipped_nodes:
        again = reroute_order(order, exclude=exclude, shipped_nodes=shipped_nodes)
        if again is None:
            raise NoShipmentBudget(
                f"order {order.order_id} already shipped from {sorted(shipped_nodes)} and asks for "
                + ", ".join(order.preferences())
                + "; its remaining lines cannot ship without breaking that",
                field="max_shipments" if order.max_shipments is not None else "ship_complete",
            )
        order = again
    t_valid = time.perf_counter()
    network = runtime.network_for([ln.sku for ln in order.lines])
    mode = body.mode or runtime.settings.default_mode
    reasons: list[str] = []
    predictions = None
    features_as_of = None
    t1 = time.perf_counter()
    candidates = evaluate(order, network, runtime.policy, now)
    if mode is Mode.PREDICTIVE:
        predictions, reasons, features_as_of = predict(order, network, runtime, now, candidates)
        if predictions is None:
            mode = Mode.COST
    t2 = time.perf_counter()
    try:
        plan = route(
            order,
            network,
            mode=mode,
            policy=runtime.policy,
            predictions=predictions,
            now=now,
            explain=explain,
            candidates=candidates,
            ranking=None if body.ranking_top == "all" else body.ranking_top,
        )
    except ValueError as exc:
        raise BadRequestMode(str(exc), field="mode") from exc
    answer = plan_to_dict(plan)
    answer["promise"] = promise_for(
        answer,
        network,
        runtime.policy,
        now=now,
        dest_timezone=where.timezone,
        dest_region=where.region,
        widening=runtime.promises.widening(),
    )
    t3 = time.perf_counter()
    answer.update(
        decision_id=str(uuid.uuid4()),
        order_id=order.order_id,
        mode=mode,
        degraded=bool(reasons),
        degraded_reasons=reasons,
        models=runtime.models.versions() if predictions is not None else {},
        features_as_of=features_as_of.isoformat() if features_as_of is not None else None,
        stock_features=stock_features(answer["allocations"], runtime.snapshot),
        timings_ms={
            "validate": round((t_valid - t0) * 1000, 3),
            "stock": round((t1 - t_valid) * 1000, 3),
            "score": round((t2 - t1) * 1000, 3),
            "route": round((t3 - t2) * 1000, 3),
        },
    )
    record_decision(answer)
    log.info(
        "decision",
        extra={
            "decision_id": answer["decision_id"],
            "order_id": order.order_id,
            "mode": mode,
            "shippable": answer.get("shippable"),
            "degraded": bool(reasons),
            "ms": round((t3 - t0) * 1000, 3),
        },
    )
    shadow = runtime.policy.shadow
    if shadow is not None:  # planned by the background worker, after this answer is returned
        runtime.shadow.submit(
            ShadowJob(
                decision_id=answer["decision_id"],
                mode=shadow.mode,
                order=order,
                network=network,
                policy=runtime.policy,
                now=now,
                live_mode=mode,
                live_plan=answer,
                predictions=predictions,
                predict=None
                if predictions is not None
                else partial(_predictions_only, order, network, runtime, now),
            )
        )
    return answer


def _predictions_only(
    order: Order, network: Network, runtime: Runtime, now: datetime
) -> PredictionArrays | None:
    return predict(order, network, runtime, now)[0]
