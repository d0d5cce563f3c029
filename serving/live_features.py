"""The ledger feeds the node×SKU features the models score with, within seconds.

A background thread follows the movement log: every movement (reservation, release, shipment,
rejection, count, adjustment) marks its node×SKU; the feed reads those rows' live position,
pushes them through Feast's PushSource to the online store and swaps them into the in-memory
snapshot. Nothing here runs on the request path.

At start, a snapshot older than the staleness bound (a demo built days ago) is brought
forward instead of answering degraded until a rebuild: every ledger row is pushed the same
way, and when the ledger allocated nothing since the batch rows were computed (so they are
still the latest values the history gives) the node and lane rows are re-dated too. When it
did, those rows wait for ``routecast features refresh`` (the loop runs it at its start) and
decisions reading them say they are stale.

Known gap: a row pushed between a day's close (00:00 UTC) and that day's batch refresh is
replaced by the close row when the refresh materialises it, until the pair moves again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from serving.ledger.live import MovementCursor

if TYPE_CHECKING:
    from serving.runtime import Runtime

log = logging.getLogger("routecast.live_features")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class FeedStats:
    pushes: int = 0
    rows_pushed: int = 0
    last_push_at: datetime | None = None
    last_push_seconds: float | None = None
    brought_forward_from_hours: float | None = None
    batch_rows_carried: int = 0
    last_error: str | None = None


class LiveFeatureFeed:
    """Follows the ledger's movement log and pushes what moved (see module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        interval_seconds: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.runtime = runtime
        self.interval = interval_seconds
        self.clock = clock
        self.cursor = MovementCursor()
        #: pairs read from the log whose push failed (the next step pushes them again)
        self._pending: dict[tuple[str, str], int] = {}
        self.stats = FeedStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prime(self) -> None:
        """Start following from now: earlier movements are already in the batch features."""
        self.cursor = self.runtime.ledger.movement_cursor()

    def push(
        self,
        keys: Sequence[tuple[str, str]] | None,
        rejections: Mapping[tuple[str, str], int] | None = None,
    ) -> int:
        """Push the live rows of ``keys`` (every ledger row when ``None``), adding
        ``rejections`` (new since the rows were last pushed) to their 7-day count."""
        from features.push import LiveStock, live_inventory_frame, push_live_inventory

        rt = self.runtime
        snap = rt.snapshot
        positions = rt.ledger.positions(keys)
        if not positions or snap is None:
            return 0
        now = self.clock()
        t0 = time.perf_counter()
        carried = {}
        for p in positions:
            row = snap.node_sku_row(p.node_id, p.sku)
            if row is not None:
                carried[(p.node_id, p.sku.upper())] = row
        new = rejections or {}
        frame = live_inventory_frame(
            [
                LiveStock(
                    p.node_id,
                    p.sku,
                    p.on_hand,
                    p.last_count_at,
                    reserved=p.reserved,
                    new_rejections=new.get((p.node_id, p.sku), 0),
                )
                for p in positions
            ],
            carried,
            now,
        )
        push_live_inventory(rt.open_feature_store(), frame)
        rows = {
            (str(r["node_id"]), str(r["sku"])): {
                c: float(r[c])
                for c in frame.columns
                if c not in ("node_id", "sku", "event_timestamp")
            }
            for r in frame.to_dict(orient="records")
        }
        current = rt.snapshot or snap
        rt.snapshot = current.with_node_sku(rows, now)
        self.stats.pushes += 1
        self.stats.rows_pushed += len(frame)
        self.stats.last_push_at = now
        self.stats.last_push_seconds = round(time.perf_counter() - t0, 4)
        return len(frame)

    def bring_forward_if_stale(self) -> bool:
        """Push every ledger row when the snapshot is older than the staleness bound."""
        snap = self.runtime.snapshot
        if snap is None:
            return False
        now = self.clock()
        age = snap.age_hours(now)
        if age is not None and age <= self.runtime.settings.feature_staleness_hours:
            return False
        batch_time = snap.newest_event
        n = self.push(None)
        self.stats.brought_forward_from_hours = None if age is None else round(age, 1)
        carried = self._carry_batch_rows(batch_time, now)
        log.info(
            "features brought forward",
            extra={"rows": n, "batch_rows_carried": carried, "from_hours": age},
        )
        return n > 0

    def _carry_batch_rows(self, batch_time: datetime | None, now: datetime) -> int:
        """Re-date node and lane rows to ``now`` unless the ledger allocated after
        ``batch_time`` (then only a refresh from the exported days gives current values)."""
        from features.push import carried_frames, write_carried

        rt = self.runtime
        last = rt.ledger.last_allocation_at()
        if batch_time is None or (last is not None and last > batch_time):
            log.warning(
                "node and lane features predate the ledger's allocations; run "
                "`routecast features refresh`",
                extra={"batch_time": str(batch_time), "last_allocation": str(last)},
            )
            return 0
        n = write_carried(rt.open_feature_store(), carried_frames(rt._read_online(), now))
        self.stats.batch_rows_carried = n
        rt.refresh_features()
        return n

    def step(self) -> int:
        """Push the rows that moved since the last step; returns rows pushed."""
        moved = self.runtime.ledger.moved_since(self.cursor)
        pending = self._pending
        for key in moved.keys:
            pending.setdefault(key, 0)
        for key, n in moved.rejections.items():
            pending[key] += n
        if not pending:
            return 0
        n = self.push(list(pending), {k: v for k, v in pending.items() if v})
        self._pending = {}
        return n

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="routecast-live", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
                self.stats.last_error = None
            except Exception as exc:  # keep following; the next step retries the same rows
                self.stats.last_error = str(exc)
                log.exception("live feature push failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
