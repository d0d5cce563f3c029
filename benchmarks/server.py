"""The real server for benchmarks and reliability runs, started one way.

``uvicorn serving.main:app`` (what ``routecast serve`` runs) on an ephemeral loopback port
against a home and a ledger database, with an API key made in that ledger. The start-up
benchmark times it, the HTTP benchmark loads it, the storms kill its workers.

The server keeps Python's bytecode caches as an installed service does, even where the
calling shell sets ``PYTHONDONTWRITEBYTECODE``: without them every start compiles some 900
modules from source (seconds), which no deployed worker pays.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from serving.cli.service import WORKER_START_SECONDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_key(database_url: str, name: str = "bench") -> str:
    """A key with every scope, made in the (migrated) ledger the server will use."""
    from serving.key_store import SqlKeyStore
    from serving.ledger import create_schema, make_engine

    engine = make_engine(database_url)
    create_schema(engine)
    key = SqlKeyStore(engine).create({"route", "orders", "inventory", "admin"}, name)
    engine.dispose()
    return key


@dataclass
class Launched:
    url: str
    process: subprocess.Popen[bytes]
    key: str
    started: float  # perf_counter just before the process was created
    errors: IO[bytes]  # the server's stderr (a file: an unread pipe would block the server)

    def stderr_tail(self, chars: int = 3000) -> str:
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace")[-chars:]


def launch(
    home: Path,
    database_url: str,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    key_name: str = "bench",
) -> Launched:
    """Start the server (not waiting for it); ``env`` adds or overrides settings."""
    key = api_key(database_url, key_name)
    port = free_port()
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by ``stop``
    started = time.perf_counter()
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "serving.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
            "--timeout-worker-healthcheck",
            str(WORKER_START_SECONDS),
        ],
        env={
            **base,
            "ROUTECAST_HOME": str(home),
            "ROUTECAST_DATABASE_URL": database_url,
            "ROUTECAST_LOG_LEVEL": "WARNING",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    return Launched(f"http://127.0.0.1:{port}", proc, key, started, errors)


def wait_for(
    server: Launched,
    path: str,
    done: Callable[[httpx.Response], bool],
    *,
    timeout: float = 600,
    poll: float = 0.05,
) -> tuple[float, float]:
    """Poll ``path`` until ``done(answer)``; returns (seconds to the first answer, seconds to
    done), both from process creation. A server that exits or times out is killed and its
    stderr raised."""
    listening: float | None = None
    with httpx.Client(base_url=server.url, timeout=5) as http:
        while True:
            if server.process.poll() is not None or time.perf_counter() - server.started > timeout:
                server.process.kill()
                raise RuntimeError(f"server did not get ready: {server.stderr_tail()}")
            try:
                r = http.get(path)
                now = time.perf_counter() - server.started
                listening = listening if listening is not None else now
                if done(r):
                    return listening, now
            except httpx.HTTPError:
                pass
            time.sleep(poll)


def stop(server: Launched, timeout: float = 30) -> None:
    """SIGINT (uvicorn's graceful stop), then SIGKILL if it does not end in ``timeout``."""
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.errors.close()
