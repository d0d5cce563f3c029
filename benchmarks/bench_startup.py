"""Start-up and memory of the real server: seconds from process start to ``/readyz`` ready and
to the first predictive answer, and the worker's resident memory once warm.

Runs ``uvicorn serving.main:app`` (what ``routecast serve`` runs) against a home and a
throwaway ledger. The first start after a build also fills the local model cache; the
second is what a restarted worker sees.

    python -m benchmarks.bench_startup [--home .routecast] [--starts 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import shown_path, stamp
from benchmarks.server import Launched, launch, stop, wait_for


@dataclass
class Started:
    url: str
    process: subprocess.Popen[bytes]
    key: str
    listening_s: float
    ready_s: float
    first_answer_s: float
    launched: Launched
    #: CPU seconds the server used until ready: on a shared machine, the figure load does not inflate
    cpu_s_ready: float


def start_server(
    home: Path,
    database_url: str,
    *,
    workers: int = 1,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> Started:
    """Start the server and wait until ``/readyz`` says ready and one order is routed
    predictively; the clock starts just before the process is created."""
    launched = launch(home, database_url, workers=workers, env=env)
    listening, ready = wait_for(
        launched,
        "/readyz",
        lambda r: r.status_code == 200 and r.json()["status"] == "ready",
        timeout=timeout,
    )
    cpu_ready = cpu_seconds(launched.process.pid)
    headers = {"Authorization": f"Bearer {launched.key}"}
    # With several workers, /readyz was answered by one of them: another may still be
    # loading (its answers are degraded until then), so ask until every one answers
    # predictively (a few in a row) or the time is up.
    deadline = time.monotonic() + 120
    streak = 0
    with httpx.Client(base_url=launched.url, timeout=30, headers=headers) as http:
        sku = http.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
        first: float | None = None
        while True:
            answer = http.post(
                "/v1/route",
                headers={"Connection": "close"},  # a new connection: any worker may take it
                json={
                    "order_id": "startup-1",
                    "destination": {"postal_code": "10001"},
                    "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
                },
            ).json()
            predictive = not answer.get("degraded") and answer.get("mode") == "predictive"
            if predictive and first is None:
                first = time.perf_counter() - launched.started
            streak = streak + 1 if predictive else 0
            if streak >= 4 * workers:
                break
            if time.monotonic() > deadline:
                stop(launched)
                raise RuntimeError(f"answers after ready were not predictive: {answer}")
            time.sleep(0 if predictive else 0.1)
    assert first is not None
    return Started(
        launched.url,
        launched.process,
        launched.key,
        round(listening, 3),
        round(ready, 3),
        round(first, 3),
        launched,
        round(cpu_ready, 2),
    )


def _tree(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [pid, *(int(p) for p in out.stdout.split())]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (uvicorn workers) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def stop_server(server: Started) -> None:
    stop(server.launched)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (uvicorn workers), MB."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def warm_rss(server: Started, orders: int = 200) -> float:
    """RSS after ``orders`` routed orders (caches and arenas warmed)."""
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, timeout=30, headers=headers) as http:
        skus = [s["sku"] for s in http.get("/v1/skus", params={"limit": 50}).json()]
        for i in range(orders):
            http.post(
                "/v1/route",
                json={
                    "order_id": f"rss-{i}",
                    "destination": {"postal_code": ["10001", "94103", "60601"][i % 3]},
                    "lines": [
                        {"line_id": str(j), "sku": skus[(i + j) % len(skus)], "qty": 1}
                        for j in range(1 + i % 3)
                    ],
                },
            )
    return rss_mb(server.process.pid)


def measure(home: Path, starts: int = 2, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``starts`` successive starts on one ledger: the first after a build, then restarts."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        url = f"sqlite:///{tmp}/ledger.db"
        for i in range(starts):
            server = start_server(home, url, env=env)
            try:
                runs.append(
                    {
                        "start": i + 1,
                        "listening_s": server.listening_s,
                        "ready_s": server.ready_s,
                        "first_answer_s": server.first_answer_s,
                        "cpu_s_ready": server.cpu_s_ready,
                        "rss_mb_ready": rss_mb(server.process.pid),
                    }
                )
            finally:
                stop_server(server)
    return {
        **stamp(),
        "home": shown_path(home),
        "what": "uvicorn serving.main:app, 1 worker; clock from process creation to /readyz "
        "'ready' (models + features loaded) and to the first predictive /v1/route answer",
        "starts": runs,
        "ready_seconds": runs[-1]["ready_s"],
        "ready_cpu_seconds": runs[-1]["cpu_s_ready"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=Path(".routecast"))
    ap.add_argument("--starts", type=int, default=2)
    args = ap.parse_args()
    print(json.dumps(measure(args.home.resolve(), args.starts), indent=2))


if __name__ == "__main__":
    main()
