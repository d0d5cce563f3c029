"""Operations edit the policy file; the service applies it without a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def test_policy_file_is_applied_and_reloaded(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, _ = demo_home
    policy = tmp_path / "policy.yaml"
    policy.write_text('version: "dc-only"\nchannels: {web: [dc]}\n')
    app = create_app(
        settings.model_copy(
            update={"policy_file": policy, "database_url": f"sqlite:///{tmp_path / 'l.db'}"}
        ),
        background=False,
    )
    with TestClient(app) as client:
        runtime = app.state.runtime
        client.headers["X-API-Key"] = runtime.keys.create({"route", "admin"})
        skus = [s["sku"] for s in client.get("/v1/skus", params={"limit": 30}).json()]
        types = {n.node_id: n.node_type for n in runtime.nodes}
        for sku in skus:
            plan = client.post(
                "/v1/route",
                json={
                    "order_id": "P",
                    "destination": {"postal_code": "10001"},
                    "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
                },
            ).json()
            assert plan["policy_version"] == "dc-only"
            assert all(types[a["node_id"]] == "dc" for a in plan["allocations"])
            fenced = [
                c
                for line in plan["ranking"]
                for c in line["candidates"]
                if types.get(c["node_id"]) == "store"
            ]
            assert all(not c["eligible"] for c in fenced)

        policy.write_text('version: "stores-too"\n')
        os.utime(policy, (policy.stat().st_atime, policy.stat().st_mtime + 5))
        assert runtime.reload_policy() is True
        assert client.get("/v1/policy").json()["policy"]["version"] == "stores-too"

        policy.write_text("channels: [not, a, mapping]\n")
        os.utime(policy, (policy.stat().st_atime, policy.stat().st_mtime + 10))
        assert runtime.reload_policy() is False
        body = client.get("/v1/policy").json()
        assert body["policy"]["version"] == "stores-too" and "channels" in body["error"]
