"""Console test helpers: sign in through the form, place an order through the API."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: TestClient, raw_key: str, next_path: str = "/console/orders") -> Any:
    """Open the sign-in page and post the key with its CSRF token; returns the answer (303)."""
    page = client.get("/console/login")
    assert page.status_code == 200
    return client.post(
        "/console/login",
        data={"csrf": csrf_of(page.text), "api_key": raw_key, "next": next_path},
        follow_redirects=False,
    )


def place(client: TestClient, api_key: str, sku: str, *, postal: str = "10001") -> dict[str, Any]:
    """Place a one-line order through the API (``POST /v1/orders``) and return its answer."""
    body = {
        "order_id": f"CO-{uuid.uuid4().hex[:10]}",
        "channel": "web",
        "destination": {"country": "US", "postal_code": postal},
        "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
    }
    r = client.post("/v1/orders", json=body, headers={"Authorization": f"Bearer {api_key}"})
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def stocked_sku(client: TestClient, api_key: str) -> str:
    """A SKU that several nodes hold (so closing one still leaves others)."""
    skus = client.get("/v1/skus?limit=50", headers={"Authorization": f"Bearer {api_key}"}).json()
    best = max(skus, key=lambda s: (s["nodes_in_stock"], s["units_available"]))
    return str(best["sku"])
