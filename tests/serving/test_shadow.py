"""Shadow mode over HTTP on a real ledger (SQLite and PostgreSQL): the shadow plan is stored
beside every live decision, never reserves, and the summary agrees with what is stored."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from routing import InvalidPolicy, Policy, policy_from_dict
from serving.app import create_app
from serving.demo import DemoReport
from serving.ledger.tables import movements
from serving.settings import Settings, get_settings
from serving.shadow import parse_since
from tests.serving.test_orders_api import _set_stock
from tests.support.services import postgres_database

NYC = {"country": "US", "postal_code": "10001"}


# -- policy and parameters: no service needed --------------------------------------------------


def test_shadow_is_off_by_default() -> None:
    assert Policy.default().shadow is None
    assert policy_from_dict({"version": "x"}).shadow is None


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ({"shadow": {"mode": "cheapest"}}, "shadow.mode"),
        ({"shadow": {}}, "shadow.mode"),
        ({"shadow": {"mode": "cost", "sample": 0.5}}, "shadow.sample"),
        ({"shadow": "cost"}, "shadow"),
    ],
)
def test_a_bad_shadow_setting_names_the_field(doc: dict[str, Any], names: str) -> None:
    with pytest.raises(InvalidPolicy, match=rf"\b{names}:"):
        policy_from_dict(doc)


def test_since_accepts_times_and_ages() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-12-01T09:00:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert parse_since(None) is None
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_since("yesterday")


def _rec(mode: str, live: tuple[list[str], float], shadow: tuple[list[str], float] | None) -> Any:
    from serving.ledger import ShadowRecord

    def side(nodes: list[str], cost: float) -> dict[str, Any]:
        return {
            "nodes": nodes,
            "cost": cost,
            "shipments": len(nodes),
            "shippable": True,
            "unallocated_units": 0.0,
            "p_stockout": 0.1 * len(nodes),
            "p_late": 0.2,
        }

    comparison = None
    if shadow is not None:
        a, b = side(*live), side(*shadow)
        comparison = {
            "basis": "model",
            "live": a,
            "shadow": b,
            "same_nodes": a["nodes"] == b["nodes"],
            "delta": {k: b[k] - a[k] for k in ("cost", "shipments", "p_stockout", "p_late")},
        }
    return ShadowRecord(
        "d",
        datetime.now(UTC),
        "predictive",
        mode,
        {} if shadow else None,
        comparison,
        None if shadow else "skipped",
    )


def test_summary_aggregates_per_shadow_mode() -> None:
    from serving.shadow import summarize

    out = summarize(
        [
            _rec("cost", (["A"], 10.0), (["A"], 10.0)),
            _rec("cost", (["A"], 10.0), (["B"], 7.0)),
            _rec("cost", (["A"], 10.0), (["A", "B"], 16.0)),
            _rec("cost", (["A"], 10.0), None),
            _rec("distance", (["A"], 10.0), (["C"], 12.0)),
        ]
    )
    assert out["decisions"] == 5 and set(out["modes"]) == {"cost", "distance"}
    cost = out["modes"]["cost"]
    assert (cost["decisions"], cost["compared"], cost["failed"]) == (4, 3, 1)
    assert cost["different_nodes"] == 2 and cost["different_nodes_share"] == pytest.approx(2 / 3)
    assert cost["cost"]["delta_total"] == pytest.approx(3.0)
    assert cost["cost"]["delta_mean"] == pytest.approx(1.0)
    assert cost["shipments_per_order"]["shadow_mean"] == pytest.approx(4 / 3)
    assert cost["p_stockout"]["delta_mean"] == pytest.approx(0.1 / 3, abs=1e-6)
    assert out["modes"]["distance"]["cost"]["delta_total"] == pytest.approx(2.0)


# -- the service ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest,
    demo_home: tuple[Settings, DemoReport],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Any, Path, str]]:
    settings, _ = demo_home
    tmp = tmp_path_factory.mktemp("shadow")
    policy = tmp / "policy.yaml"
    policy.write_text('version: "live-only"\n')
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp / 'ledger.db'}"
        else:
            name = stack.enter_context(postgres_database("rc_shadow"))
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        app = create_app(
            settings.model_copy(update={"database_url": url, "policy_file": policy}),
            background=False,
        )
        with TestClient(app) as client:
            runtime = app.state.runtime
            client.headers["Authorization"] = "Bearer " + runtime.keys.create(
                {"route", "orders", "inventory", "admin"}, "tests"
            )
            yield client, runtime, policy, url


def _set_policy(runtime: Any, path: Path, text: str, bump: int) -> bool:
    path.write_text(text)
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + bump))
    return bool(runtime.reload_policy())


def _stock_case(client: TestClient, runtime: Any) -> tuple[str, str, str]:
    """A SKU held by a near DC (few units) and a far DC (many): cost and high_stock disagree."""
    dcs = [n for n in runtime.nodes if n.node_type == "dc" and n.enabled]
    near = min(dcs, key=lambda n: (n.lat - 40.75) ** 2 + (n.lon + 73.99) ** 2)
    far = max(dcs, key=lambda n: (n.lat - 40.75) ** 2 + (n.lon + 73.99) ** 2)
    sku = sorted(runtime.skus.values(), key=lambda r: r.sku)[-1].sku
    _set_stock(client, sku, {near.node_id: 40, far.node_id: 400})
    return sku, near.node_id, far.node_id


def _order(sku: str, qty: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": f"S-{uuid.uuid4().hex[:12]}",
        "channel": "web",
        "destination": NYC,
        "lines": [{"line_id": "1", "sku": sku, "qty": qty}],
        **extra,
    }


def _levels(client: TestClient, sku: str) -> dict[str, tuple[int, int]]:
    nodes = client.get(f"/v1/inventory/{sku}").json()["nodes"]
    return {n["node_id"]: (n["on_hand"], n["reserved"]) for n in nodes}


def _cost(plan: dict[str, Any]) -> float:
    return sum(a["shipping"] + a["handling"] for a in plan["allocations"]) + sum(
        s["fixed_cost"] for s in plan["shipment_detail"]
    )


@pytest.mark.slow
@pytest.mark.xdist_group("shadow")
def test_shadow_mode_stores_both_plans_never_reserves_and_summary_agrees(
    api: tuple[TestClient, Any, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, runtime, policy, url = api
    sku, _, far = _stock_case(client, runtime)
    start = datetime.now(UTC) - timedelta(seconds=1)

    # Off by default: the decision has no shadow and the summary is empty.
    off = client.post("/v1/route", json=_order(sku, mode="cost")).json()
    runtime.shadow.drain()
    assert client.get(f"/v1/decisions/{off['decision_id']}").json()["shadow"] is None

    # A bad shadow setting is refused with the field named; the last good policy stays.
    assert not _set_policy(runtime, policy, "shadow: {mode: cheapest}\n", 5)
    body = client.get("/v1/policy").json()
    assert "shadow.mode" in body["error"] and body["policy"]["shadow"] is None

    assert _set_policy(runtime, policy, 'version: "shadowed"\nshadow: {mode: high_stock}\n', 10)
    assert runtime.policy.shadow.mode == "high_stock"
    since = datetime.now(UTC)
    before = _levels(client, sku)
    with runtime.engine.connect() as conn:
        moves_before = conn.execute(select(movements.c.movement_id)).all()

    decision_ids: list[str] = []
    for mode in ("cost", None):  # dry runs: explicit cost, then the default (predictive)
        extra = {"mode": mode} if mode else {}
        r = client.post("/v1/route", json=_order(sku, 2, **extra))
        assert r.status_code == 200, r.text
        decision_ids.append(r.json()["decision_id"])
    placed = []
    for _ in range(2):
        o = _order(sku, 3, mode="cost")
        r = client.post("/v1/orders", json=o)
        assert r.status_code == 201, r.text
        placed.append((o["order_id"], r.json()))
        decision_ids.append(r.json()["decision"]["decision_id"])
    # A rejection reroutes away from the rejecting node: that decision is shadowed too.
    oid, first = placed[0]
    rejected = first["allocations"][0]["node_id"]
    r = client.post(
        f"/v1/orders/{oid}/rejections",
        json={"node_id": rejected, "line_ids": ["1"], "reason": "not_in_stock"},
    )
    assert r.status_code == 200, r.text
    if r.json().get("decision"):
        decision_ids.append(r.json()["decision"]["decision_id"])
    assert runtime.shadow.drain(60)

    records = [client.get(f"/v1/decisions/{d}").json() for d in decision_ids]
    for rec in records:
        sh = rec["shadow"]
        assert sh is not None and sh["error"] is None, rec["decision_id"]
        assert sh["mode"] == "high_stock" and sh["plan"]["mode"] == "high_stock"
        assert sh["live_mode"] == rec["mode"] == rec["plan"]["mode"]
        live_nodes = sorted({a["node_id"] for a in rec["plan"]["allocations"]})
        assert sh["comparison"]["live"]["nodes"] == live_nodes
        assert sh["comparison"]["shadow"]["nodes"] == sorted(
            {a["node_id"] for a in sh["plan"]["allocations"]}
        )
        if rec["mode"] == "predictive":  # the live predictions price both plans
            assert sh["comparison"]["basis"] == "model"
    assert any(r["shadow"]["plan"]["allocations"][0]["node_id"] == far for r in records)

    # Never reserved: every reserved unit and every movement row belongs to a live plan.
    live_reserved: dict[str, int] = {}
    for order_id, _ in placed:
        for a in client.get(f"/v1/orders/{order_id}").json()["allocations"]:
            if a["status"] == "reserved":
                live_reserved[a["node_id"]] = live_reserved.get(a["node_id"], 0) + a["qty"]
    after = _levels(client, sku)
    for node, (on_hand, reserved) in after.items():
        if node != rejected:  # a stock rejection corrects the rejecting node's count
            assert on_hand == before[node][0], node
        assert reserved - before[node][1] == live_reserved.get(node, 0), node
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(movements.c.node_id, movements.c.kind, movements.c.ref).where(
                movements.c.movement_id.not_in([m.movement_id for m in moves_before])
            )
        ).all()
    order_ids = {o for o, _ in placed}
    assert rows and all(r.ref in order_ids for r in rows)
    touched = {r.node_id for r in rows}
    assert touched <= {a["node_id"] for _, p in placed for a in p["allocations"]} | {
        n for n in live_reserved
    }

    # The summary counts exactly the stored decisions and agrees with their plans.
    summary = client.get("/v1/shadow/summary", params={"since": since.isoformat()}).json()
    assert summary["shadow_mode"] == "high_stock"
    m = summary["modes"]["high_stock"]
    assert m["decisions"] == len(records) and m["compared"] == len(records)
    differ = [
        r
        for r in records
        if {a["node_id"] for a in r["plan"]["allocations"]}
        != {a["node_id"] for a in r["shadow"]["plan"]["allocations"]}
    ]
    assert m["different_nodes"] == len(differ) >= 1
    assert m["different_nodes_share"] == pytest.approx(len(differ) / len(records))
    delta = sum(_cost(r["shadow"]["plan"]) - _cost(r["plan"]) for r in records)
    assert m["cost"]["delta_total"] == pytest.approx(delta, abs=1e-3 * len(records))
    ships = [r["shadow"]["plan"]["shipments"] for r in records]
    assert m["shipments_per_order"]["shadow_mean"] == pytest.approx(sum(ships) / len(ships))
    assert not math.isnan(m["p_late"]["delta_mean"])
    assert sum(m["live_modes"].values()) == len(records)
    # ``since`` bounds it: the unshadowed decision before is not counted, a later bound is empty.
    earlier = client.get("/v1/shadow/summary", params={"since": start.isoformat()}).json()
    assert earlier["modes"] == summary["modes"]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert client.get("/v1/shadow/summary", params={"since": later}).json()["modes"] == {}
    bad = client.get("/v1/shadow/summary", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["field"] == "since"

    # The CLI prints the same summary from the same ledger.
    monkeypatch.setenv("ROUTECAST_DATABASE_URL", url)
    monkeypatch.setenv("ROUTECAST_HOME", str(runtime.settings.home))
    get_settings.cache_clear()
    try:
        from serving.cli import app as cli

        out = CliRunner().invoke(cli, ["shadow", "report", "--since", since.isoformat(), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["modes"] == summary["modes"]
        table = CliRunner().invoke(cli, ["shadow", "report", "--since", since.isoformat()])
        assert table.exit_code == 0 and "shadow=high_stock" in table.stdout
    finally:
        get_settings.cache_clear()
    _set_policy(runtime, policy, 'version: "live-only"\n', 15)
