"""The operations console through the real app on the demo world: sign-in, cookie flags, CSRF,
scopes, every page rendered from real ledger data, and node edits validated like the API's."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.console.session import COOKIE, Sessions
from serving.console.views import latest_backtest
from serving.demo import DemoReport
from serving.settings import Settings
from tests.support.apps import api_client
from tests.support.console import csrf_of, place, sign_in, stocked_sku

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("console")]


@pytest.fixture(scope="module")
def app(
    demo_home: tuple[Settings, DemoReport], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Any]]:
    settings, _ = demo_home
    url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'ledger.db'}"
    with api_client(settings, url) as (client, runtime):
        del client.headers["Authorization"]  # the console signs in with cookies
        yield client, runtime


@pytest.fixture(scope="module")
def keys(app: tuple[TestClient, Any]) -> dict[str, str]:
    _, runtime = app
    return {
        "admin": runtime.keys.create({"admin"}, "ops lead"),
        "orders": runtime.keys.create({"orders"}, "support"),
        "inventory": runtime.keys.create({"inventory"}, "stock"),
        "route": runtime.keys.create({"route"}, "analyst"),
    }


@pytest.fixture(scope="module")
def order(app: tuple[TestClient, Any], keys: dict[str, str]) -> dict[str, Any]:
    client, _ = app
    return place(client, keys["admin"], stocked_sku(client, keys["admin"]))


@pytest.fixture
def admin(app: tuple[TestClient, Any], keys: dict[str, str]) -> Iterator[TestClient]:
    client, _ = app
    client.cookies.clear()
    assert sign_in(client, keys["admin"]).status_code == 303
    yield client
    client.cookies.clear()


# -- access ---------------------------------------------------------------------------------


def test_sign_in_sets_a_strict_http_only_short_cookie_without_the_key(
    app: tuple[TestClient, Any], keys: dict[str, str]
) -> None:
    client, runtime = app
    client.cookies.clear()
    r = sign_in(client, keys["orders"], "/console/orders?status=placed")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/orders?status=placed"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    flags = {p.strip().lower() for p in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags
    assert f"max-age={runtime.settings.console_session_seconds}" in flags
    assert runtime.settings.console_session_seconds <= 3600
    secret = keys["orders"].split("_", 2)[2]
    assert secret not in cookie
    page = client.get("/console/orders")
    assert page.status_code == 200
    assert secret not in page.text and keys["orders"] not in page.text
    assert "Content-Security-Policy" in page.headers
    client.cookies.clear()


def test_a_wrong_key_is_refused_and_gets_no_session(app: tuple[TestClient, Any]) -> None:
    client, _ = app
    client.cookies.clear()
    r = sign_in(client, "rc_nothere_" + "x" * 43)
    assert r.status_code == 401
    assert "not valid" in r.text
    assert COOKIE not in client.cookies
    assert client.get("/console/orders", follow_redirects=False).status_code == 303


def test_pages_without_a_session_send_to_sign_in(app: tuple[TestClient, Any]) -> None:
    client, _ = app
    client.cookies.clear()
    for path in ("/console/orders", "/console/nodes", "/console/kpis", "/console/models"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login?next=")


def test_forged_or_expired_cookies_are_not_sessions(
    app: tuple[TestClient, Any], keys: dict[str, str]
) -> None:
    client, _ = app
    key_id = keys["admin"].split("_")[1]
    forged = f"{key_id}.{int(time.time()) + 600}.nonce.bad-signature"
    client.cookies.clear()
    client.cookies.set(COOKIE, forged, path="/console")
    assert client.get("/console/orders", follow_redirects=False).status_code == 303
    sessions = Sessions(b"secret", 900)
    cookie, _ = sessions.issue(key_id, now=time.time() - 1000)
    assert sessions.read(cookie) is None  # expired
    fresh, _ = sessions.issue(key_id)
    assert sessions.read(fresh) is not None
    assert Sessions(b"other", 900).read(fresh) is None
    client.cookies.clear()


def test_sign_in_without_the_csrf_token_is_refused(
    app: tuple[TestClient, Any], keys: dict[str, str]
) -> None:
    client, _ = app
    client.cookies.clear()
    client.get("/console/login")
    r = client.post(
        "/console/login", data={"api_key": keys["admin"], "csrf": "nope"}, follow_redirects=False
    )
    assert r.status_code == 403
    assert COOKIE not in client.cookies


def test_a_form_without_csrf_changes_nothing(
    admin: TestClient, app: tuple[TestClient, Any]
) -> None:
    _, runtime = app
    node = runtime.ledger.nodes()[0]
    r = admin.post(
        f"/console/nodes/{node.node_id}/capacity", data={"daily_capacity": "7", "enabled": "on"}
    )
    assert r.status_code == 403
    r = admin.post(
        f"/console/nodes/{node.node_id}/capacity",
        data={"daily_capacity": "7", "enabled": "on", "csrf": "forged"},
    )
    assert r.status_code == 403
    after = next(n for n in runtime.ledger.nodes() if n.node_id == node.node_id)
    assert after.daily_capacity == node.daily_capacity


def test_scopes_decide_pages_and_forms(app: tuple[TestClient, Any], keys: dict[str, str]) -> None:
    client, runtime = app
    node_id = runtime.ledger.nodes()[0].node_id
    client.cookies.clear()
    sign_in(client, keys["route"])
    assert client.get("/console/orders").status_code == 403
    models = client.get("/console/models")
    assert models.status_code == 200
    assert 'href="/console/orders"' not in models.text
    assert client.get("/console/shadow").status_code == 200
    client.cookies.clear()
    sign_in(client, keys["orders"])
    assert client.get("/console/orders").status_code == 200
    assert client.get("/console/kpis").status_code == 200
    assert client.get("/console/nodes").status_code == 403
    client.cookies.clear()
    sign_in(client, keys["inventory"])
    page = client.get(f"/console/nodes/{node_id}")
    assert page.status_code == 200
    assert "needs the <code>admin</code> scope" in page.text
    assert "/capacity" not in page.text
    r = client.post(
        f"/console/nodes/{node_id}/capacity",
        data={"daily_capacity": "3", "csrf": csrf_of(page.text)},
    )
    assert r.status_code == 403
    client.cookies.clear()


def test_sign_out_and_revocation_end_the_session(
    app: tuple[TestClient, Any], keys: dict[str, str]
) -> None:
    client, runtime = app
    client.cookies.clear()
    raw = runtime.keys.create({"orders"}, "temp")
    sign_in(client, raw)
    page = client.get("/console/orders")
    r = client.post("/console/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/console/orders", follow_redirects=False).status_code == 303
    sign_in(client, raw)
    assert client.get("/console/orders").status_code == 200
    runtime.keys.revoke(raw.split("_")[1])
    assert client.get("/console/orders", follow_redirects=False).status_code == 303
    client.cookies.clear()


# -- pages from real data -------------------------------------------------------------------


def test_order_search_finds_the_order_by_each_field(
    admin: TestClient, order: dict[str, Any]
) -> None:
    oid = order["order_id"]
    node = order["allocations"][0]["node_id"]
    today = datetime.now(UTC).date().isoformat()
    for query in (
        f"order_id={oid[:6]}",
        "status=placed",
        "channel=web",
        f"node_id={node}",
        f"date={today}",
    ):
        page = admin.get(f"/console/orders?{query}")
        assert page.status_code == 200
        assert oid in page.text, query
    assert oid not in admin.get("/console/orders?status=shipped").text
    bad = admin.get("/console/orders?date=yesterday")
    assert "use a date like" in bad.text
    nul = admin.get("/console/orders", params={"order_id": "A\x00B", "node_id": "x" * 65})
    assert nul.status_code == 200 and nul.text.count("no control characters") == 2
    assert admin.get("/console/orders/A%00B").status_code == 404


def test_order_page_shows_the_api_decision(
    admin: TestClient, app: tuple[TestClient, Any], order: dict[str, Any]
) -> None:
    page = admin.get(f"/console/orders/{order['order_id']}")
    assert page.status_code == 200
    html = page.text
    decision = order["decision"]
    assert decision["decision_id"] in html
    winner = order["allocations"][0]["node_id"]
    row = re.search(rf'<tr class="chosen" data-node="{re.escape(winner)}">(.*?)</tr>', html, re.S)
    assert row is not None, "the allocated node is not marked chosen"
    entry = next(
        e for e in decision["ranking"][0]["candidates"] if e["node_id"] == winner and e["eligible"]
    )
    for term in ("shipping", "handling", "stockout_risk_cost", "late_cost"):
        cell = re.search(rf'data-term="{term}">([^<]+)<', row.group(1))
        assert cell is not None and cell.group(1) == f"{entry[term]:.2f}", term
    assert 'class="map"' in html and "<circle" in html
    assert 'class="bars"' in html
    assert "placed" in html  # timeline
    assert decision["promise"]["deliver_by"] in html
    fenced = [e for e in decision["ranking"][0]["candidates"] if not e["eligible"]]
    if fenced:
        assert fenced[0]["reason_code"] in html
    assert admin.get("/console/orders/NO-SUCH-ORDER").status_code == 404


def test_nodes_kpis_models_and_shadow_render_real_data(
    admin: TestClient, app: tuple[TestClient, Any], order: dict[str, Any]
) -> None:
    _, runtime = app
    nodes = admin.get("/console/nodes")
    assert nodes.status_code == 200
    for rec in runtime.ledger.nodes():
        assert f'data-node="{rec.node_id}"' in nodes.text
    kpis = admin.get("/console/kpis?since=1d")
    assert kpis.status_code == 200
    n = runtime.ledger.order_facts(datetime(2000, 1, 1, tzinfo=UTC))
    assert f'id="kpi-orders">{len(n)}<' in kpis.text
    assert admin.get("/console/kpis?since=soon").status_code == 422
    models = admin.get("/console/models")
    assert models.status_code == 200
    for role, loaded in ((r, runtime.models.get(r)) for r in runtime.models.names):
        assert loaded is not None, role
        assert f"v{loaded.version}" in models.text
    assert runtime.settings.mlflow_ui_url in models.text
    shadow = admin.get("/console/shadow")
    assert shadow.status_code == 200 and "Shadow mode in the policy" in shadow.text
    assert admin.get("/console/backtest/../ledger.db").status_code == 404


def test_kpis_api_answers_the_same_numbers(
    app: tuple[TestClient, Any], keys: dict[str, str], order: dict[str, Any]
) -> None:
    client, _ = app
    r = client.get("/v1/kpis?since=1d", headers={"Authorization": f"Bearer {keys['orders']}"})
    assert r.status_code == 200
    body = r.json()
    assert body["overall"]["orders"] >= 1
    assert body["overall"]["promise_coverage"] == 1.0
    assert body["decision_latency_ms"]["n"] >= 1
    assert (
        client.get(
            "/v1/kpis?since=later", headers={"Authorization": f"Bearer {keys['orders']}"}
        ).status_code
        == 422
    )
    found = client.get(
        f"/v1/orders?order_id={order['order_id']}",
        headers={"Authorization": f"Bearer {keys['orders']}"},
    ).json()
    assert [o["order_id"] for o in found] == [order["order_id"]]


# -- edits through the API's validation -----------------------------------------------------


def test_capacity_edit_validates_and_saves(admin: TestClient, app: tuple[TestClient, Any]) -> None:
    _, runtime = app
    node = runtime.ledger.nodes()[-1]
    page = admin.get(f"/console/nodes/{node.node_id}")
    token = csrf_of(page.text)
    bad = admin.post(
        f"/console/nodes/{node.node_id}/capacity",
        data={"csrf": token, "daily_capacity": "-4", "enabled": "on"},
    )
    assert bad.status_code == 422
    assert "daily_capacity" in bad.text and 'aria-invalid="true"' in bad.text
    assert next(n for n in runtime.ledger.nodes() if n.node_id == node.node_id) == node
    ok = admin.post(
        f"/console/nodes/{node.node_id}/capacity",
        data={"csrf": token, "daily_capacity": "40", "enabled": "on"},
    )
    assert ok.status_code == 200 and "Capacity saved" in ok.text
    saved = next(n for n in runtime.ledger.nodes() if n.node_id == node.node_id)
    assert saved.daily_capacity == 40 and saved.enabled
    admin.post(
        f"/console/nodes/{node.node_id}/capacity",
        data={"csrf": token, "daily_capacity": str(node.daily_capacity), "enabled": "on"},
    )


def test_calendar_edit_shows_errors_and_saves_a_valid_calendar(
    admin: TestClient, app: tuple[TestClient, Any]
) -> None:
    _, runtime = app
    node = runtime.ledger.nodes()[-2]
    token = csrf_of(admin.get(f"/console/nodes/{node.node_id}").text)
    url = f"/console/nodes/{node.node_id}/calendar"
    bad_hours = admin.post(url, data={"csrf": token, "hours_set": "on", "hours_mon": "20:00-08:00"})
    assert bad_hours.status_code == 422 and "must open before it closes" in bad_hours.text
    bad_date = admin.post(url, data={"csrf": token, "holidays": "2026-13-45"})
    assert bad_date.status_code == 422 and "holidays" in bad_date.text
    bad_closure = admin.post(url, data={"csrf": token, "closures": "tomorrow"})
    assert bad_closure.status_code == 422 and "start | end | reason" in bad_closure.text
    assert next(n for n in runtime.ledger.nodes() if n.node_id == node.node_id) == node
    ok = admin.post(
        url,
        data={
            "csrf": token,
            "hours_set": "on",
            **{f"hours_{d}": "08:00-20:00" for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": "2026-12-25",
            "closures": "2026-12-30T08:00 | 2026-12-30T12:00 | stocktake",
            "cutoff": "15:00",
        },
    )
    assert ok.status_code == 200 and "Calendar saved" in ok.text
    cal = next(n for n in runtime.ledger.nodes() if n.node_id == node.node_id).calendar[0]
    assert cal["weekly_hours"]["mon"] == ["08:00-20:00"] and cal["weekly_hours"]["sun"] == []
    assert cal["holidays"] == ["2026-12-25"] and cal["cutoff"] == "15:00"
    assert cal["closures"][0]["reason"] == "stocktake"
    # the form shows what is stored; clearing it restores an always-open node
    page = admin.get(f"/console/nodes/{node.node_id}")
    assert "2026-12-30T08:00:00 | 2026-12-30T12:00:00 | stocktake" in page.text
    admin.post(url, data={"csrf": token})
    assert next(n for n in runtime.ledger.nodes() if n.node_id == node.node_id).calendar[0] == {
        "holidays": [],
        "closures": [],
    }


def test_closing_a_node_today_fences_it_for_the_next_order(
    admin: TestClient, app: tuple[TestClient, Any], keys: dict[str, str]
) -> None:
    client, _ = app
    sku = stocked_sku(client, keys["admin"])
    first = place(client, keys["admin"], sku)
    winner = first["allocations"][0]["node_id"]
    token = csrf_of(admin.get(f"/console/nodes/{winner}").text)
    r = admin.post(
        f"/console/nodes/{winner}/close-today", data={"csrf": token, "reason": "flooded"}
    )
    assert r.status_code == 200 and "Closed for the rest of today" in r.text
    assert "flooded until" in r.text
    second = place(client, keys["admin"], sku)
    assert all(a["node_id"] != winner for a in second["allocations"])
    fenced = {
        e["node_id"]: e for e in second["decision"]["ranking"][0]["candidates"] if not e["eligible"]
    }
    assert winner in fenced and "flooded" in (fenced[winner]["reason"] or "")
    admin.post(f"/console/nodes/{winner}/calendar", data={"csrf": token})  # reopen


def test_latest_backtest_finds_the_newest_report_and_its_plots(tmp_path: Path) -> None:
    assert latest_backtest(tmp_path / "none") is None
    for name in ("old", "new"):
        d = tmp_path / "results" / name
        (d / "plots").mkdir(parents=True)
        (d / "report.md").write_text("# report")
        (d / "plots" / "cost.png").write_bytes(b"\x89PNG")
        time.sleep(0.01)
    found = latest_backtest(tmp_path)
    assert found is not None and found["name"] == "results/new"
    assert found["plots"] == ["results/new/plots/cost.png"]
