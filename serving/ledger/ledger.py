"""``Ledger``: the transactional inventory ledger the API and CLI call.

Each public method is one database transaction (SQLite ``BEGIN IMMEDIATE`` / PostgreSQL
READ COMMITTED with row locks taken in a fixed order). Transient conflicts (deadlock,
serialization failure, a lost race on a unique key, a busy SQLite file) are retried; a retry
re-reads everything, so a lost insert race turns into an idempotent replay.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from routing.domain import RejectReason
from serving.ledger import (
    adjustments,
    audit,
    deliveries,
    drift,
    idempotency,
    invariants,
    live,
    outbox,
    promise_outcomes,
    reporting,
)
from serving.ledger import orders as order_ops
from serving.ledger import returns as returns_ops
from serving.ledger.db import driver_cursor, writer_lock
from serving.ledger.errors import (
    IdempotencyInFlight,
    IdempotencyMismatch,
    InvalidLedgerRequest,
    LedgerBusy,
    LedgerError,
    OrderNotFound,
)
from serving.ledger.outbox import OutboxConfig
from serving.ledger.promise_outcomes import LaneWidening, PromiseOutcome
from serving.ledger.records import (
    AdjustResult,
    AllocationRequest,
    DecisionRecord,
    DeliveryEvent,
    DeliveryResult,
    DriftReport,
    Hold,
    IdemState,
    InitialStock,
    InventoryEvent,
    NodeRecord,
    OrderView,
    RejectResult,
    Reservation,
    ShadowRecord,
    StockLevel,
    StockPosition,
)
from serving.ledger.stock_ops import chunks
from serving.ledger.tables import nodes, stock

T = TypeVar("T")
log = logging.getLogger("routecast.ledger")
AllocationLike = AllocationRequest | tuple[str, str, str, int]
ResponseBuilder = Callable[[Reservation], dict[str, Any]]

REJECT_REASONS: tuple[str, ...] = tuple(r.value for r in RejectReason)
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlstate(exc: Exception) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def _lost_unique_race(exc: IntegrityError) -> bool:
    return _sqlstate(exc) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _transient(exc: OperationalError) -> bool:
    return _sqlstate(exc) in _RETRY_SQLSTATES or "database is locked" in str(exc.orig)


def default_response(reservation: Reservation) -> dict[str, Any]:
    """Response stored under an idempotency key when the caller gives no builder."""
    return {
        "order_id": reservation.order_id,
        "status": reservation.status,
        "allocations": [asdict(a) for a in reservation.allocations],
    }


@cache
def _availability_query(by_sku: bool, by_node: bool) -> Select[Any]:
    """The routing read, built once per shape (it runs for every order)."""
    q = select(
        stock.c.node_id,
        stock.c.sku,
        stock.c.on_hand,
        stock.c.reserved,
        stock.c.available,
        stock.c.shipped,
        stock.c.shortfall,
    ).order_by(stock.c.sku, stock.c.node_id)
    if by_sku:
        q = q.where(stock.c.sku.in_(bindparam("skus", expanding=True)))
    if by_node:
        q = q.where(stock.c.node_id.in_(bindparam("node_ids", expanding=True)))
    return q


@cache
def _available_sql(dialect: str, n: int) -> str:
    """The routing read for ``n`` SKUs in the driver's parameter style."""
    mark = "%s" if dialect == "postgresql" else "?"
    return (
        "SELECT node_id, sku, available FROM stock WHERE sku IN ("
        + ", ".join([mark] * n)
        + ") ORDER BY sku, node_id"
    )


def _allocations(items: Sequence[AllocationLike]) -> list[AllocationRequest]:
    out = [a if isinstance(a, AllocationRequest) else AllocationRequest(*a) for a in items]
    if not out:
        raise InvalidLedgerRequest("an order needs at least one allocation")
    for a in out:
        if isinstance(a.qty, bool) or not isinstance(a.qty, int) or a.qty <= 0:
            raise InvalidLedgerRequest(
                f"line {a.line_id}: qty must be a positive integer, got {a.qty!r}"
            )
        if not (a.line_id and a.node_id and a.sku):
            raise InvalidLedgerRequest("line_id, node_id and sku must be non-empty")
    return out


class Ledger:
    """Inventory truth: availability, atomic reservations, idempotency, adjustments, audit."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_rejections: int = 3,
        claim_stale_after: timedelta = timedelta(seconds=15),
        retries: int = 5,
        clock: Callable[[], datetime] = _utcnow,
        events: OutboxConfig | None = None,
    ) -> None:
        self.engine = engine
        self._writer = writer_lock(engine)
        self.outbox = events or OutboxConfig()
        self.max_rejections = max_rejections
        self.claim_stale_after = claim_stale_after
        self.retries = retries
        self.clock = clock

    # -- transactions -------------------------------------------------------------------

    def _write(self, work: Callable[[Connection], T]) -> T:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                with self._writer, self.engine.begin() as conn:
                    outbox.bind(conn, self.outbox)
                    return work(conn)
            except IntegrityError as exc:
                if last or not _lost_unique_race(exc):
                    raise LedgerError(f"ledger constraint refused the write: {exc.orig}") from exc
            except OperationalError as exc:
                if not _transient(exc):
                    raise
                if last:
                    raise LedgerBusy("the ledger stayed busy; retry the request") from exc
                time.sleep(min(0.01 * 2**attempt, 0.5))
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Connection], T]) -> T:
        with self.engine.connect().execution_options(ledger_readonly=True) as conn, conn.begin():
            return work(conn)

    # -- nodes and stock ------------------------------------------------------------------

    def upsert_nodes(self, items: Sequence[NodeRecord]) -> int:
        """Insert or update nodes (operations edit calendars, capacity, enabled)."""
        at = self.clock()

        def work(conn: Connection) -> int:
            existing = set(conn.execute(select(nodes.c.node_id)).scalars())
            for n in items:
                values = {
                    "node_type": n.node_type,
                    "enabled": n.enabled,
                    "priority": n.priority,
                    "lat": n.lat,
                    "lon": n.lon,
                    "timezone": n.timezone,
                    "daily_capacity": n.daily_capacity,
                    "closed_until": n.closed_until,
                    "calendar": list(n.calendar),
                    "updated_at": at,
                }
                if n.node_id in existing:
                    conn.execute(
                        nodes.update().where(nodes.c.node_id == n.node_id).values(**values)
                    )
                else:
                    conn.execute(nodes.insert().values(node_id=n.node_id, **values))
                    existing.add(n.node_id)
            return len(items)

        return self._write(work)

    def nodes(self) -> list[NodeRecord]:
        def work(conn: Connection) -> list[NodeRecord]:
            return [
                NodeRecord(
                    node_id=r.node_id,
                    node_type=r.node_type,
                    lat=r.lat,
                    lon=r.lon,
                    enabled=bool(r.enabled),
                    priority=r.priority,
                    timezone=r.timezone,
                    daily_capacity=r.daily_capacity,
                    closed_until=r.closed_until,
                    calendar=list(r.calendar or []),
                )
                for r in conn.execute(select(nodes).order_by(nodes.c.node_id))
            ]

        return self._read(work)

    def load_stock(self, rows: Sequence[InitialStock], *, event_time: datetime) -> int:
        """Bulk-set on-hand (initial load) as a count at ``event_time``; returns rows set."""
        at = self.clock()
        return self._write(
            lambda conn: adjustments.load_stock(conn, rows, event_time=event_time, at=at)
        )

    def availability(
        self, skus: Sequence[str] | None = None, *, node_ids: Sequence[str] | None = None
    ) -> list[StockLevel]:
        """Stock per node×SKU in one read (candidates for routing), ordered by SKU then node."""
        query = _availability_query(skus is not None, node_ids is not None)

        def work(conn: Connection) -> list[StockLevel]:
            parts: list[Sequence[str] | None] = (
                [None] if skus is None else list(chunks(sorted(set(skus))))
            )
            out: list[StockLevel] = []
            for part in parts:
                params: dict[str, list[str]] = {}
                if part is not None:
                    params["skus"] = list(part)
                if node_ids is not None:
                    params["node_ids"] = list(node_ids)
                out.extend(
                    StockLevel(
                        node_id=r.node_id,
                        sku=r.sku,
                        on_hand=int(r.on_hand),
                        reserved=int(r.reserved),
                        available=int(r.available),
                        shipped=int(r.shipped),
                        shortfall=int(r.shortfall),
                    )
                    for r in conn.execute(query, params)
                )
            return out

        return self._read(work)

    def available_rows(self, skus: Sequence[str]) -> list[tuple[str, str, int]]:
        """(node_id, sku, available) of every stock row of ``skus``: the read every routing
        decision makes, through the driver's own cursor. At 200 nodes × 5 SKUs the
        SQLAlchemy result rows and ``StockLevel`` objects of ``availability`` cost more than
        the query; one SELECT needs no explicit transaction on SQLite (autocommit), and the
        pool's rollback on return ends PostgreSQL's."""
        wanted = sorted(set(skus))
        if not wanted:
            return []
        out: list[tuple[str, str, int]] = []
        with self.engine.connect() as conn, driver_cursor(conn) as cursor:
            for part in chunks(wanted):
                cursor.execute(_available_sql(conn.dialect.name, len(part)), list(part))
                out.extend(cursor.fetchall())
        return out

    def movement_cursor(
        self, *, window: int = 1000, gap_seconds: float = 10.0
    ) -> live.MovementCursor:
        """A place at the end of the movement log to follow it from (``live.MovementCursor``);
        ids missing among the last ``window`` are watched, their transactions may commit yet."""
        return self._read(lambda conn: live.cursor_at_end(conn, window, gap_seconds=gap_seconds))

    def follow(self, cursor: live.MovementCursor, limit: int = 50_000) -> list[live.LogRow]:
        """Movements committed since ``cursor`` last read, advancing it: one statement past
        its high-water mark (plus one for ids it stepped over, while there are any) through
        the driver's cursor, as ``available_rows`` reads (it runs before every decision)."""
        with self.engine.connect() as conn, driver_cursor(conn) as cur:
            return live.follow(cur, conn.dialect.name, cursor, limit)

    def moved_since(self, cursor: live.MovementCursor, limit: int = 50_000) -> live.Moved:
        """Node×SKU pairs the movement log touched since ``cursor`` last read (with their
        rejections), advancing it."""
        return live.moved(self.follow(cursor, limit), cursor.high)

    def last_movement_id(self) -> int:
        return self._read(live.last_movement_id)

    def last_allocation_at(self) -> datetime | None:
        """When the newest allocation was made (None: the ledger never allocated)."""
        return self._read(live.last_allocation_at)

    def positions(self, keys: Sequence[tuple[str, str]] | None = None) -> list[StockPosition]:
        """Live stock with last-count times for the given pairs (all when ``None``)."""
        return self._read(lambda conn: live.positions(conn, keys))

    def orders_today(self, *, every_node: bool = False) -> dict[str, int]:
        """Orders each capacity-limited node (or every node) took in its local day (the
        routing hint; the reservation re-counts inside its own transaction)."""
        at = self.clock()

        def work(conn: Connection) -> dict[str, int]:
            if every_node:
                rows: list[Any] = list(conn.execute(select(nodes.c.node_id, nodes.c.timezone)))
            else:
                rows = order_ops.capacity_limited(conn, None, lock=False)
            return live.orders_taken_today(conn, rows, at)

        return self._read(work)

    # -- operations reports (console and API) ----------------------------------------------

    def search_orders(
        self, search: reporting.OrderFilter, *, limit: int = 100
    ) -> list[reporting.OrderRow]:
        """Orders matching every given field, newest first."""
        return self._read(lambda conn: reporting.search_orders(conn, search, limit))

    def node_activity(self, since: datetime) -> dict[str, reporting.NodeActivity]:
        """Stock per node now; allocations, rejections and parcels since ``since``."""
        return self._read(lambda conn: reporting.node_activity(conn, since))

    def order_facts(
        self, since: datetime, *, limit: int = 20_000, shipped_only: bool = False
    ) -> list[reporting.OrderFacts]:
        """The newest ``limit`` orders since ``since`` with what their KPIs need."""
        return self._read(
            lambda conn: reporting.order_facts(conn, since, limit, shipped_only=shipped_only)
        )

    def ping(self) -> None:
        """One round trip to the database (readiness)."""
        self._read(lambda conn: conn.execute(select(1)).scalar_one())

    # -- idempotency ----------------------------------------------------------------------

    def begin_idempotent(self, key: str, request_hash: str) -> IdemState:
        """Claim ``key`` before routing. ``replay`` carries the stored answer.

        Raises ``IdempotencyMismatch`` (422) for a different body and ``IdempotencyInFlight``
        (409) while another worker holds the claim.
        """
        at = self.clock()
        return self._write(
            lambda conn: idempotency.claim(
                conn, key, request_hash, at=at, stale_after=self.claim_stale_after
            )
        )

    def complete_idempotent(
        self,
        key: str,
        request_hash: str,
        *,
        response: dict[str, Any] | None,
        http_status: int,
        order_id: str | None = None,
    ) -> None:
        """Store a response for a claimed key outside a reservation (e.g. a dry-run answer)."""
        at = self.clock()
        self._write(
            lambda conn: idempotency.complete(
                conn,
                key,
                request_hash,
                response=response,
                http_status=http_status,
                order_id=order_id,
                at=at,
            )
        )

    def release_idempotent(self, key: str, request_hash: str) -> bool:
        """Give up a claim after a failure, so the client may retry with the same key."""
        return self._write(lambda conn: idempotency.release(conn, key, request_hash))

    @contextmanager
    def idempotent(self, key: str | None, request_hash: str) -> Iterator[IdemState | None]:
        """Hold the claim on ``key`` for the block (``None`` without a key).

        The state says ``replay`` when the key is already done. If the block raises, the
        claim is released, so a failed order can be retried with the same key; a completed
        (``done``) key is never released.
        """
        if key is None:
            yield None
            return
        state = self.begin_idempotent(key, request_hash)
        try:
            yield state
        except BaseException:
            self.release_quietly(key, request_hash)
            raise

    def release_quietly(self, key: str, request_hash: str) -> None:
        """Release after a failure without masking it; if the database is the failure, the
        claim cannot be released now and expires after ``claim_stale_after`` instead."""
        try:
            self.release_idempotent(key, request_hash)
        except Exception:
            log.warning("idempotency claim kept until it expires: the release failed too")

    # -- orders ---------------------------------------------------------------------------

    def reserve_order(
        self,
        order_id: str,
        allocations: Sequence[AllocationLike],
        *,
        idempotency_key: str | None = None,
        request_hash: str,
        plan: dict[str, Any],
        response_builder: ResponseBuilder | None = None,
        http_status: int = 201,
        hold: Hold | None = None,
        customer_id: str | None = None,
        destination_key: str | None = None,
        keep_claim: bool = False,
    ) -> Reservation:
        """Place the order: all allocations reserved, order, movements and key stored, or nothing.

        With ``hold`` the order is ``held``: its stock is reserved but it is not released to
        nodes until ``release_hold`` (or it is cancelled when the hold expires).

        Replays (same key or same order id with the same ``request_hash``) return the
        earlier outcome with ``replayed=True`` and reserve nothing. On failure the key's
        in-flight claim is released so the client can retry once stock allows, unless
        ``keep_claim`` says the caller holds it in an ``idempotent`` block.
        """
        lines = _allocations(allocations)
        at = self.clock()
        build = response_builder or default_response

        def work(conn: Connection) -> Reservation:
            row = None
            if idempotency_key is not None:
                row = idempotency.lookup(conn, idempotency_key, lock=True)
                if row is not None and row.request_hash != request_hash:
                    raise IdempotencyMismatch(idempotency_key)
                if row is not None and row.status == "done":
                    return self._replay(conn, row, order_id)

            def answered(result: Reservation) -> Reservation:
                if idempotency_key is None:
                    return result
                response = build(result)
                idempotency.complete(
                    conn,
                    idempotency_key,
                    request_hash,
                    response=response,
                    http_status=http_status,
                    order_id=order_id,
                    at=at,
                    current=row,
                )
                return replace(result, response=response, http_status=http_status)

            stored: list[Reservation] = []

            def store_answer(view: OrderView) -> None:
                # The answer goes in with the order, before its stock rows are locked: a
                # stored answer still means reserved stock (one transaction), and the rows
                # stay locked for less.
                stored.append(answered(Reservation(order_id, view.status, view.allocations)))

            view, existed = order_ops.place(
                conn,
                order_id,
                lines,
                request_hash=request_hash,
                plan=plan,
                at=at,
                hold=hold,
                customer_id=customer_id,
                destination_key=destination_key,
                before_stock=store_answer,
            )
            if existed:
                return answered(Reservation(order_id, view.status, view.allocations, replayed=True))
            return stored[0]

        try:
            return self._write(work)
        except (IdempotencyMismatch, IdempotencyInFlight):
            raise
        except Exception:
            if idempotency_key is not None and not keep_claim:
                self.release_quietly(idempotency_key, request_hash)
            raise

    @staticmethod
    def _replay(conn: Connection, row: Any, order_id: str) -> Reservation:
        stored_order = row.order_id or order_id
        try:
            view = order_ops.order_view(conn, stored_order)
        except OrderNotFound:
            return Reservation(
                order_id=stored_order,
                status="placed",
                allocations=[],
                replayed=True,
                response=row.response,
                http_status=row.http_status,
            )
        return Reservation(
            order_id=view.order_id,
            status=view.status,
            allocations=view.allocations,
            replayed=True,
            response=row.response,
            http_status=row.http_status,
        )

    def reallocate(self, order_id: str, allocations: Sequence[AllocationLike]) -> Reservation:
        """Reserve new homes for rerouted lines of an open order (all or none)."""
        lines = _allocations(allocations)
        at = self.clock()
        view = self._write(lambda conn: order_ops.reallocate(conn, order_id, lines, at=at))
        return Reservation(order_id=view.order_id, status=view.status, allocations=view.allocations)

    def replan(
        self,
        order_id: str,
        allocations: Sequence[AllocationLike],
        *,
        why: str,
        plan: dict[str, Any] | None = None,
        expect_reserved: frozenset[int] | None = None,
    ) -> Reservation:
        """Release every open reservation and reserve ``allocations`` instead, atomically.

        ``expect_reserved`` (allocation ids) guards against a change since the caller read the
        order: if the open reservations differ, nothing moves (``OrderChanged``)."""
        lines = _allocations(allocations)
        at = self.clock()
        view = self._write(
            lambda conn: order_ops.replan(
                conn, order_id, lines, at=at, why=why, plan=plan, expect_reserved=expect_reserved
            )
        )
        return Reservation(order_id=view.order_id, status=view.status, allocations=view.allocations)

    def cancel_line(
        self,
        order_id: str,
        line_id: str,
        qty: int | None,
        *,
        edit_plan: Callable[[dict[str, Any], str, int], dict[str, Any]],
    ) -> OrderView:
        """Cancel open units of one line before it ships (shipped units: ``LineAlreadyShipped``)."""
        if qty is not None and (isinstance(qty, bool) or qty <= 0):
            raise InvalidLedgerRequest(f"qty must be a positive integer, got {qty!r}", field="qty")
        at = self.clock()
        return self._write(
            lambda conn: order_ops.cancel_line(
                conn, order_id, line_id, qty, at=at, edit_plan=edit_plan
            )
        )

    def release_hold(self, order_id: str) -> OrderView:
        """Release a held order to its nodes."""
        at = self.clock()
        return self._write(lambda conn: order_ops.release_hold(conn, order_id, at=at))

    def expire_holds(self) -> list[str]:
        """Cancel holds past their expiry, releasing their stock; returns the order ids."""
        at = self.clock()
        return self._write(lambda conn: order_ops.expire_holds(conn, at=at))

    def recent_orders(
        self, *, customer_id: str | None, destination_key: str | None, since: datetime
    ) -> tuple[int, int]:
        """(orders to this destination, orders by this customer) placed since ``since``."""
        return self._read(
            lambda conn: order_ops.recent_orders(
                conn, customer_id=customer_id, destination_key=destination_key, since=since
            )
        )

    def create_return(
        self,
        order_id: str,
        *,
        node_id: str,
        why: str,
        reason: str | None,
        lines: Sequence[tuple[str, int]],
        return_id: str | None = None,
    ) -> returns_ops.ReturnView:
        """Record a return of shipped units, routed to ``node_id`` (``why`` says why there)."""
        if not lines:
            raise InvalidLedgerRequest("lines: name at least one line to return", field="lines")
        at = self.clock()
        rid = return_id or f"R-{uuid.uuid4().hex[:12]}"
        return self._write(
            lambda conn: returns_ops.create(
                conn, order_id, rid, node_id=node_id, why=why, reason=reason, lines=lines, at=at
            )
        )

    def receive_return(
        self,
        return_id: str,
        lines: Sequence[tuple[str, int, str]],
        *,
        receipt_id: str | None = None,
    ) -> tuple[returns_ops.ReturnView, bool]:
        """Record arrivals: resellable units back in stock through the movement log; a
        resent ``receipt_id`` is recognised and changes nothing (second value ``True``)."""
        if not lines:
            raise InvalidLedgerRequest("lines: name at least one received line", field="lines")
        at = self.clock()
        return self._write(
            lambda conn: returns_ops.receive(conn, return_id, lines, at=at, receipt_id=receipt_id)
        )

    def get_return(self, return_id: str) -> returns_ops.ReturnView:
        return self._read(lambda conn: returns_ops.view(conn, return_id))

    def get_order(self, order_id: str) -> OrderView:
        return self._read(lambda conn: order_ops.order_view(conn, order_id))

    def cancel_order(self, order_id: str) -> OrderView:
        """Release the order's reservations (idempotent; shipped lines stay shipped)."""
        at = self.clock()
        return self._write(lambda conn: order_ops.cancel(conn, order_id, at=at, last=True))

    def ship_order(
        self,
        order_id: str,
        lines: Sequence[str] | None = None,
        *,
        carrier: str | None = None,
        tracking_number: str | None = None,
        shipped_at: datetime | None = None,
    ) -> OrderView:
        """Deduct reserved stock for all (or the given) lines: on_hand and reserved drop.

        One shipment per node is recorded with ``carrier`` and ``tracking_number``;
        ``shipped_at`` is when it left (the sender's clock), defaulting to now.
        """
        at = self.clock()
        return self._write(
            lambda conn: order_ops.ship(
                conn,
                order_id,
                lines,
                at=at,
                carrier=carrier,
                tracking_number=tracking_number,
                shipped_at=shipped_at,
            )
        )

    def confirm_deliveries(
        self, order_id: str, events: Sequence[DeliveryEvent]
    ) -> list[DeliveryResult]:
        """Mark shipments delivered from carrier events; idempotent per ``event_id``."""
        if not events:
            raise InvalidLedgerRequest("deliveries: send at least one delivery", field="deliveries")
        at = self.clock()
        return self._write(lambda conn: deliveries.confirm(conn, order_id, events, at=at))

    def promise_outcomes(
        self,
        since: datetime | None = None,
        *,
        lanes: Sequence[tuple[str, str]] | None = None,
        delivery_model: str | None = None,
        shipment_ids: Sequence[str] | None = None,
    ) -> list[PromiseOutcome]:
        return self._read(
            lambda conn: promise_outcomes.outcomes(
                conn,
                since,
                lanes=lanes,
                delivery_model=delivery_model,
                shipment_ids=shipment_ids,
            )
        )

    def lane_widenings(self, delivery_model: str | None = None) -> list[LaneWidening]:
        return self._read(lambda conn: promise_outcomes.widenings(conn, delivery_model))

    def set_lane_widening(self, widening: LaneWidening) -> None:
        self._write(lambda conn: promise_outcomes.set_widening(conn, widening))

    def clear_lane_widening(self) -> int:
        return self._write(promise_outcomes.clear_widening)

    def reject_allocation(
        self, order_id: str, node_id: str, line_ids: Sequence[str], reason: RejectReason
    ) -> RejectResult:
        """A node refused lines: release them, learn from the reason, return what to reroute."""
        if reason not in REJECT_REASONS:
            raise InvalidLedgerRequest(
                f"reason must be one of {list(REJECT_REASONS)}, got {reason!r}"
            )
        if not line_ids:
            raise InvalidLedgerRequest("name at least one rejected line")
        at = self.clock()
        return self._write(
            lambda conn: order_ops.reject(
                conn,
                order_id,
                node_id,
                line_ids,
                reason,
                at=at,
                max_rejections=self.max_rejections,
            )
        )

    # -- events (transactional outbox) ----------------------------------------------------

    def events(
        self,
        *,
        order_id: str | None = None,
        type_: str | None = None,
        delivery_status: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[outbox.EventView]:
        return self._read(
            lambda conn: outbox.list_events(
                conn,
                order_id=order_id,
                type_=type_,
                delivery_status=delivery_status,
                after=after,
                limit=limit,
            )
        )

    def get_event(self, event_id: str) -> outbox.EventView | None:
        return self._read(lambda conn: outbox.get_event(conn, event_id))

    def redeliver(self, event_id: str, endpoints: Sequence[str]) -> outbox.EventView | None:
        """Queue an event again (after a dead letter, or for a receiver that lost it)."""
        at = self.clock()
        return self._write(lambda conn: outbox.redeliver(conn, event_id, endpoints, at=at))

    def claim_deliveries(
        self, endpoints: Sequence[str], *, lease: timedelta, limit: int = 100
    ) -> list[outbox.DueDelivery]:
        now = self.clock()
        return self._write(
            lambda conn: outbox.claim_due(
                conn, endpoints, now=now, lease_until=now + lease, limit=limit
            )
        )

    def defer_delivery(self, event_id: str, endpoint: str, *, until: datetime) -> None:
        """Move a leased delivery's next attempt without counting an attempt."""
        at = self.clock()
        self._write(lambda conn: outbox.defer(conn, event_id, endpoint, until=until, at=at))

    def record_delivery(
        self,
        event_id: str,
        endpoint: str,
        *,
        ok: bool,
        next_attempt_at: datetime | None,
        http_status: int | None = None,
        error: str | None = None,
    ) -> None:
        at = self.clock()
        self._write(
            lambda conn: outbox.record_attempt(
                conn,
                event_id,
                endpoint,
                ok=ok,
                at=at,
                next_attempt_at=next_attempt_at,
                http_status=http_status,
                error=error,
            )
        )

    # -- adjustments, drift, audit --------------------------------------------------------

    def adjust(self, events: Sequence[InventoryEvent]) -> list[AdjustResult]:
        """Apply counts and deltas from any channel; idempotent per ``event_id``."""
        if not events:
            return []
        at = self.clock()
        adjustments.validate_events(events, now=at)
        return self._write(lambda conn: adjustments.adjust(conn, events, at=at))

    def check(self, repair: bool = False) -> DriftReport:
        """Replay the movement log against stock rows; ``repair`` resets drifted rows to the log."""
        at = self.clock()
        return self._write(lambda conn: drift.check(conn, repair=repair, at=at))

    def record_decision(
        self,
        decision_id: str,
        *,
        request: dict[str, Any],
        plan: dict[str, Any],
        model_versions: dict[str, Any],
        mode: str,
        degraded: bool = False,
        order_id: str | None = None,
        created_at: datetime | None = None,
    ) -> bool:
        """Store the audit row of one routing decision; ``False`` if it was already stored."""
        rec = DecisionRecord(
            decision_id=decision_id,
            order_id=order_id,
            created_at=created_at or self.clock(),
            request=request,
            plan=plan,
            model_versions=model_versions,
            mode=mode,
            degraded=degraded,
        )
        return self._write(lambda conn: audit.record(conn, rec))

    def record_decisions(self, recs: Sequence[DecisionRecord]) -> None:
        """Store many audit rows in one transaction (``serving.audit_log`` batches them)."""
        self._write(lambda conn: audit.record_many(conn, recs))

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        return self._read(lambda conn: audit.fetch(conn, decision_id))

    def record_shadow(self, rec: ShadowRecord) -> bool:
        """Store a decision's shadow plan (never a reservation); ``False`` if already stored."""
        return self._write(lambda conn: audit.record_shadow(conn, rec))

    def get_shadow(self, decision_id: str) -> ShadowRecord | None:
        return self._read(lambda conn: audit.fetch_shadow(conn, decision_id))

    def shadows_since(self, since: datetime | None = None) -> list[ShadowRecord]:
        """Stored shadow records of audited decisions made at or after ``since``, oldest first."""
        return self._read(lambda conn: audit.shadows_since(conn, since))

    def invariant_violations(self) -> list[str]:
        return invariants.violations(self.engine)
