"""SQLite writers queue across processes on the writer lock (not in SQLite's polling busy
handler), a nested write in one thread does not release it early, and PostgreSQL takes none."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from serving.ledger.db import make_engine, writer_lock

HOLD = """
import sys, time
from serving.ledger.db import make_engine, writer_lock
lock = writer_lock(make_engine(sys.argv[1]))
with lock:
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_process_waits_for_the_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD, url, "1.0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with writer_lock(make_engine(url)):
            waited = time.monotonic() - t0
    finally:
        other.wait(timeout=30)
    assert waited > 0.5  # it waited for the other process to finish its write


def test_nested_writes_keep_the_lock_until_the_outermost_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lock = writer_lock(make_engine(url))
    with lock:
        with lock:
            pass
        # still held: another process cannot take it now
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import fcntl, os, sys\n"
                "fd = os.open(sys.argv[1], os.O_RDWR)\n"
                "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                "except BlockingIOError:\n    print('busy')\n",
                f"{tmp_path / 'ledger.db'}.writer-lock",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert probe.stdout.strip() == "busy"


def test_postgres_writers_take_no_lock() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    assert isinstance(writer_lock(engine), nullcontext)
