"""End to end with the real parts: a small world in a temp dir → Feast apply and
materialize → LightGBM training → MLflow registry → FastAPI (TestClient) → ranked plans.

Nothing is mocked; assertions are on real predictions and registry state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from serving.app import create_app
from serving.demo import DemoReport, build_demo
from serving.schemas.order import DEFAULT_RANKING_TOP
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


@pytest.fixture(scope="module")
def client(demo_home: tuple[Settings, DemoReport]) -> Iterator[TestClient]:
    settings, _ = demo_home
    app = create_app(settings, background=False)
    with TestClient(app) as c:
        raw = app.state.runtime.keys.create({"route", "orders", "inventory", "admin"}, "e2e")
        c.headers["Authorization"] = f"Bearer {raw}"
        yield c


def _stocked_skus(client: TestClient, n: int) -> list[str]:
    rows = client.get("/v1/skus", params={"limit": n}).json()
    assert len(rows) == n
    return [r["sku"] for r in rows]


def test_demo_registers_both_models_as_champion(demo_home: tuple[Settings, DemoReport]) -> None:
    settings, report = demo_home
    mc = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    for name in (settings.stockout_model, settings.delivery_model):
        mv = mc.get_model_version_by_alias(name, "champion")
        assert str(mv.version) == "1"
        assert "feature_service" in mv.tags and mv.description
    # The description shows where a version is good or bad, not only the averages.
    deliv_mv = mc.get_model_version_by_alias(settings.delivery_model, "champion")
    assert "Coverage by lane group" in deliv_mv.description
    assert "| group | n | p50_coverage | p90_coverage | mean_p90_days |" in deliv_mv.description
    assert "plots/coverage_by_lane.png" in deliv_mv.description
    assert "Coverage by band group (the P90's conformal groups: weekday > node_type_code)" in (
        deliv_mv.description
    )
    assert "| p50_low | p50_high | n | mean_p50 | mean_p90 | p50_coverage | p90_coverage |" in (
        deliv_mv.description
    )
    assert "plots/reliability.png" in deliv_mv.description
    stock_mv = mc.get_model_version_by_alias(settings.stockout_model, "champion")
    assert "Reliability on the test window (model)" in stock_mv.description
    assert "| low | high | n | predicted | observed |" in stock_mv.description
    assert "Metrics by node" in stock_mv.description
    assert "| group | n | observed | predicted | auc | brier | ece |" in stock_mv.description
    assert "plots/risk_by_node.png" in stock_mv.description
    stock = report.metrics[settings.stockout_model]
    assert stock["model"]["auc"] > stock["baseline_on_hand_rule"]["auc"]
    deliv = report.metrics[settings.delivery_model]
    assert deliv["model"]["mae_p50"] < deliv["baseline_distance_rule"]["mae_p50"]


def test_demo_is_idempotent(demo_home: tuple[Settings, DemoReport]) -> None:
    settings, first = demo_home
    # The same end as the first build: a build on a later UTC day simulates that day on purpose.
    again = build_demo(settings, progress=False, end=first.end)
    notes = {s.name: s.note for s in again.steps}
    assert "skipped" in notes["train and register models"]
    mc = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    assert len(mc.search_model_versions(f"name = '{settings.stockout_model}'")) == 1


def test_health_and_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready", ready
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert models["routecast-stockout-risk"]["version"] == "1"
    assert models["routecast-delivery-days"]["status"] == "loaded"


def test_route_returns_ranked_plan_with_real_predictions(client: TestClient) -> None:
    sku_a, sku_b = _stocked_skus(client, 2)
    order = {
        "order_id": "E2E-1",
        "channel": "web",
        "destination": {"country": "US", "postal_code": "10001"},
        "lines": [
            {"line_id": "1", "sku": sku_a, "qty": 1},
            {"line_id": "2", "sku": sku_b, "qty": 1},
        ],
    }
    r = client.post("/v1/route", json=order)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["shippable"] is True and plan["degraded"] is False
    assert plan["mode"] == "predictive"
    assert plan["models"] == {"routecast-stockout-risk": "1", "routecast-delivery-days": "1"}
    assert uuid.UUID(plan["decision_id"])
    assert {a["line_id"] for a in plan["allocations"]} == {"1", "2"}
    for alloc in plan["allocations"]:
        assert 0.0 <= alloc["p_stockout"] <= 1.0
        assert 0.0 <= alloc["days_p50"] <= alloc["days_p90"]
        assert alloc["qty"] > 0
    # predictions differ between nodes: they come from the models, not constants
    assert plan["ranking"]


def test_same_order_twice_gives_same_plan(client: TestClient) -> None:
    (sku,) = _stocked_skus(client, 1)
    order = {
        "order_id": "E2E-2",
        "destination": {"postal_code": "94103"},
        "lines": [{"line_id": "1", "sku": sku, "qty": 2}],
    }
    a = client.post("/v1/route", json=order).json()
    b = client.post("/v1/route", json=order).json()
    assert [x["node_id"] for x in a["allocations"]] == [x["node_id"] for x in b["allocations"]]
    assert a["decision_id"] != b["decision_id"]


@pytest.mark.parametrize("mode", ["cost", "priority", "distance", "high_stock"])
def test_other_modes_route_without_models(client: TestClient, mode: str) -> None:
    (sku,) = _stocked_skus(client, 1)
    order = {
        "order_id": f"E2E-{mode}",
        "mode": mode,
        "destination": {"lat": 34.05, "lon": -118.24},
        "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
    }
    plan = client.post("/v1/route", json=order).json()
    assert plan["mode"] == mode and plan["shippable"] is True
    assert plan["models"] == {}


def test_bad_input_names_the_field(client: TestClient) -> None:
    r = client.post(
        "/v1/route",
        json={
            "order_id": "X",
            "destination": {"postal_code": "10001"},
            "lines": [{"line_id": "1", "sku": "S", "qty": 0}],
        },
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "lines.0.qty" in r.json()["detail"]
    r = client.post(
        "/v1/route",
        json={
            "order_id": "X",
            "destination": {"postal_code": "10001"},
            "lines": [{"line_id": "1", "sku": "NOPE-1", "qty": 1}],
        },
    )
    assert r.status_code == 422 and r.json()["field"] == "lines.0.sku"
    r = client.post(
        "/v1/route",
        json={
            "order_id": "X",
            "destination": {"postal_code": "00000"},
            "lines": [{"line_id": "1", "sku": _stocked_skus(client, 1)[0], "qty": 1}],
        },
    )
    assert r.status_code == 422 and r.json()["field"] == "destination.postal_code"


def test_redis_online_store_serves_the_same_features(
    demo_home: tuple[Settings, DemoReport], redis_available: None, tmp_path: Path
) -> None:
    """Same feature tables, materialized into Redis; the app routes from it."""
    from features.compute import build_feature_tables
    from features.store import apply_definitions, materialize, open_store, teardown

    settings, _ = demo_home
    (tmp_path / "data").symlink_to(settings.data_dir.resolve(), target_is_directory=True)
    project = f"rc_test_{uuid.uuid4().hex[:8]}"
    redis_settings = Settings(
        home=tmp_path,
        online_store="redis",
        feast_project=project,
        mlflow_tracking_uri=settings.tracking_uri,
    )
    build_feature_tables(redis_settings.raw_dir, redis_settings.feature_dir)
    store = open_store(
        redis_settings.feature_dir, online="redis", redis_url="127.0.0.1:6379", project=project
    )
    try:
        apply_definitions(store, redis_settings.feature_dir)
        materialize(store, datetime.now(UTC))
        app = create_app(redis_settings, background=False)
        with TestClient(app) as c:
            c.headers["X-API-Key"] = app.state.runtime.keys.create({"route"})
            assert c.get("/readyz").json()["status"] == "ready"
            (sku,) = _stocked_skus(c, 1)
            plan = c.post(
                "/v1/route",
                json={
                    "order_id": "R-1",
                    "destination": {"postal_code": "60601"},
                    "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
                },
            ).json()
            assert plan["shippable"] and not plan["degraded"]
            assert plan["models"]["routecast-stockout-risk"] == "1"
    finally:
        teardown(store)


# -- the listed ranking (serving.decide, OrderIn.ranking_top) --------------------------------


def _order(sku: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": "TOP-1",
        "destination": {"postal_code": "60601"},
        "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
        **extra,
    }


def _widely_stocked(client: TestClient) -> tuple[str, dict[str, Any]]:
    """A SKU with more eligible nodes than the listing shows, and its full answer."""
    for row in client.get("/v1/skus", params={"limit": 50}).json():
        full = client.post("/v1/route", json=_order(row["sku"], ranking_top="all")).json()
        if full["shippable"] and full["ranking"][0]["eligible_count"] > 3:
            return row["sku"], full
    raise AssertionError("the demo world has no SKU stocked at more than 3 eligible nodes")


def _same_decision(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in ("allocations", "total_cost", "explanation", "search", "promise"):
        assert a[key] == b[key], key


def test_top_candidates_are_the_head_of_the_full_ranking(client: TestClient) -> None:
    sku, full = _widely_stocked(client)
    line = full["ranking"][0]
    assert line["listed_all"] and len(line["candidates"]) == line["eligible_count"] + sum(
        line["fenced_count"].values()
    )
    short = client.post("/v1/route", json=_order(sku, ranking_top=3)).json()
    _same_decision(short, full)
    top = short["ranking"][0]
    assert not top["listed_all"]
    assert (top["eligible_count"], top["fenced_count"]) == (
        line["eligible_count"],
        line["fenced_count"],
    )
    chosen = {a["node_id"] for a in full["allocations"]}
    elig = [e for e in line["candidates"] if e["eligible"]]
    want = elig[:3] + [e for e in elig[3:] if e["node_id"] in chosen]
    assert [e for e in top["candidates"] if e["eligible"]] == want
    assert len([e for e in top["candidates"] if not e["eligible"]]) <= 3

    default = client.post("/v1/route", json=_order(sku)).json()
    _same_decision(default, full)
    listed = [e for e in default["ranking"][0]["candidates"] if e["eligible"]]
    assert listed == elig[:DEFAULT_RANKING_TOP] + [
        e for e in elig[DEFAULT_RANKING_TOP:] if e["node_id"] in chosen
    ]

    none = client.post("/v1/route", json=_order(sku, ranking_top=0)).json()
    _same_decision(none, full)
    assert [e["node_id"] for e in none["ranking"][0]["candidates"] if e["eligible"]] == sorted(
        chosen
    )


@pytest.mark.parametrize("bad", [-1, 1001, "most", 2.5, None])
def test_bad_ranking_top_is_a_422_naming_the_field(client: TestClient, bad: Any) -> None:
    (row,) = client.get("/v1/skus", params={"limit": 1}).json()
    r = client.post("/v1/route", json=_order(row["sku"], ranking_top=bad))
    assert r.status_code == 422, r.text
    assert "ranking_top" in r.text
