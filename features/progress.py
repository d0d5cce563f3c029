"""Optional progress reporting for long feature jobs, so callers can watch a big build."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

log = logging.getLogger("routecast.features")
_console = Console(stderr=True)


@contextmanager
def stage(name: str, enabled: bool) -> Iterator[None]:
    """Announce a stage and its duration on stderr when enabled; always log at debug level."""
    started = time.perf_counter()
    if enabled:
        _console.print(f"[bold cyan]features[/] {name} …")
    log.debug("start %s", name)
    yield
    elapsed = time.perf_counter() - started
    if enabled:
        _console.print(f"[bold cyan]features[/] {name} done in {elapsed:.1f}s")
    log.debug("done %s in %.2fs", name, elapsed)


@contextmanager
def quiet_feast(enabled: bool) -> Iterator[None]:
    """Silence Feast's prints, progress bars and warnings unless the caller asked for progress.

    Exceptions still propagate; only the chatter written while the block runs is dropped.
    """
    if not enabled:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if threading.current_thread() is not threading.main_thread():
            # the streams are the process's: swapping them from a background thread (a live
            # feature push) would drop, or keep swallowing, the main thread's output
            yield
            return
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
