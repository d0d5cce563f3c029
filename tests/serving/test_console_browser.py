"""The console in a real Chromium (Debian's package, driven by Playwright): sign in, find an
order placed through the API and check its ranking against the API's answer, close a node for
today and see the next order avoid it, read the KPI page.

Needs /usr/bin/chromium (``make browser`` installs it; ``.ci/run`` does so in CI). Without it
the test skips locally and fails under CI=true. ``ROUTECAST_SCREENSHOTS=DIR`` keeps the
screenshots (the README's come from here).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings
from tests.support.services import IN_CI

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("console")]

CHROMIUM = os.environ.get("ROUTECAST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _need_browser() -> Any:
    """Playwright's sync API, once the system Chromium is known to exist."""
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM}: run `make browser` (Debian chromium)"
    try:
        from playwright import sync_api
    except ImportError:
        reason = "playwright is not installed: run `make setup`"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true requires the browser test; .ci/run installs it)")
        pytest.skip(reason)
    return sync_api


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(
    demo_home: tuple[Settings, DemoReport], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The real app under uvicorn on a free port with a throwaway ledger: (base URL, key)."""
    _need_browser()
    settings, _ = demo_home
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'ledger.db'}"
    app = create_app(settings.model_copy(update={"database_url": url}), background=False)
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    key = app.state.runtime.keys.create({"admin"}, "browser test")
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def _place(base: str, key: str, sku: str, order_id: str) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "channel": "web",
        "destination": {"country": "US", "postal_code": "10001"},
        "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
    }
    r = httpx.post(
        f"{base}/v1/orders", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_console_in_chromium(server: tuple[str, str], tmp_path: Path) -> None:
    sync_api = _need_browser()
    base, key = server
    shots = Path(os.environ.get("ROUTECAST_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    auth = {"Authorization": f"Bearer {key}"}
    skus = httpx.get(f"{base}/v1/skus?limit=50", headers=auth, timeout=30).json()
    sku = max(skus, key=lambda s: (s["nodes_in_stock"], s["units_available"]))["sku"]
    first = _place(base, key, sku, "WEB-1001")
    winner = first["allocations"][0]["node_id"]
    started = time.perf_counter()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())
        # Sign in with the keyboard alone: the labelled key field has the focus.
        page.goto(f"{base}/console/orders")
        assert "/console/login" in page.url
        assert page.evaluate("document.activeElement.id") == "api_key"
        page.keyboard.type(key)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/console/orders")
        assert key not in page.content()
        page.keyboard.press("Tab")  # the first Tab reaches the skip link
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"

        # Find the order placed through the API and open its ranking.
        page.get_by_label("Order id (prefix)").fill("WEB-10")
        page.get_by_label("Order id (prefix)").press("Enter")
        page.get_by_role("link", name="WEB-1001").click()
        page.wait_for_url(f"{base}/console/orders/WEB-1001")
        row = page.locator(f'tr.chosen[data-node="{winner}"]')
        assert row.count() == 1
        entry = next(
            e
            for e in first["decision"]["ranking"][0]["candidates"]
            if e["node_id"] == winner and e["eligible"]
        )
        for term in ("shipping", "handling", "stockout_risk_cost", "late_cost"):
            cell = row.locator(f'td[data-term="{term}"]').inner_text().strip()
            assert cell == f"{entry[term]:.2f}", term
        assert page.locator("#decision-id").inner_text() == first["decision"]["decision_id"]
        assert page.locator("svg.map circle").count() >= 2
        page.screenshot(path=str(shots / "console-order.png"), full_page=True)

        # Close the winning node for today, then the next order goes elsewhere.
        page.goto(f"{base}/console/nodes/{winner}")
        page.get_by_label("Reason for closing").fill("burst pipe")
        page.locator("#close-today").click()
        page.wait_for_selector("text=Closed for the rest of today.")
        assert "burst pipe" in page.locator("#node-state").inner_text()
        second = _place(base, key, sku, "WEB-1002")
        assert all(a["node_id"] != winner for a in second["allocations"])
        page.goto(f"{base}/console/orders/WEB-1002")
        assert page.locator(f'tr.fenced[data-node="{winner}"]').count() == 1

        # KPIs after a handful of orders; readable on a tablet without sideways scrolling.
        for i in range(3):
            _place(base, key, sku, f"WEB-20{i}")
        shipped = httpx.post(f"{base}/v1/orders/WEB-1001/shipments", json={}, headers=auth)
        parcel = shipped.json()["shipments"][0]["shipment_id"]
        delivery = {"event_id": "dlv-1", "shipment_id": parcel, "delivered_at": _now()}
        r = httpx.post(
            f"{base}/v1/orders/WEB-1001/deliveries", json={"deliveries": [delivery]}, headers=auth
        )
        assert r.status_code == 200, r.text
        rejected = httpx.get(f"{base}/v1/orders/WEB-200", headers=auth).json()["allocations"][0]
        r = httpx.post(
            f"{base}/v1/orders/WEB-200/rejections",
            json={"node_id": rejected["node_id"], "line_ids": ["1"], "reason": "damaged"},
            headers=auth,
            timeout=60,
        )
        assert r.status_code == 200, r.text
        page.goto(f"{base}/console/kpis?since=1d")
        assert page.locator("#kpi-orders").inner_text() == "5"
        assert page.locator("#kpi-on-time").inner_text() == "100.0%"
        assert page.locator("#kpi-rerouted").inner_text() == "20.0%"
        page.screenshot(path=str(shots / "console-kpis.png"), full_page=True)
        page.set_viewport_size({"width": 768, "height": 1024})
        page.goto(f"{base}/console/nodes")
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        browser.close()
    print(f"browser test: {time.perf_counter() - started:.1f} s in Chromium")
