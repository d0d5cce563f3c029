"""Optional progress reporting for long feature jobs, so callers can watch a big build."""

from __future__ import annotations

import logging
import time
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
