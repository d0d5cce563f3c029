"""The batching audit writer: every record handed over is stored once (a repeated decision id
keeps the first row), a failing store is retried and then counted, never dropped silently,
and stopping writes what is still queued."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from serving import metrics
from serving.audit_log import AuditLog
from serving.ledger import Ledger
from serving.ledger.records import DecisionRecord


def _submit(log: AuditLog, i: int, order_id: str | None = None) -> None:
    log.submit(
        DecisionRecord(
            decision_id=f"d{i}",
            order_id=order_id,
            created_at=datetime(2026, 12, 2, tzinfo=UTC),
            request={"order_id": f"o{i}"},
            plan={"decision_id": f"d{i}", "allocations": [{"line_id": "1"}]},
            model_versions={"m": "1"},
            mode="predictive",
            degraded=False,
        )
    )


def test_handed_over_records_are_all_stored_once(ledger: Ledger) -> None:
    log = AuditLog(ledger)
    threads = [
        threading.Thread(target=lambda k=k: [_submit(log, 100 * k + i) for i in range(100)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _submit(log, 7, order_id="again")  # an id already handed over: the first row stays
    log.flush()
    for k in range(4):
        for i in range(100):
            rec = ledger.get_decision(f"d{100 * k + i}")
            assert rec is not None and rec.plan["decision_id"] == f"d{100 * k + i}"
    assert ledger.get_decision("d7").order_id is None  # type: ignore[union-attr]
    _submit(log, 1000)
    log.stop()  # writes what is queued before the writer ends
    assert ledger.get_decision("d1000") is not None


def test_records_handed_over_together_share_a_transaction(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    store = ledger.record_decisions

    def counted(recs: Any) -> None:
        batches.append(len(recs))
        store(recs)

    monkeypatch.setattr(ledger, "record_decisions", counted)
    log = AuditLog(ledger, linger=0.5)
    _submit(log, 1)
    time.sleep(0.05)  # the writer has the first record and waits for company
    _submit(log, 2)
    log.flush()
    assert batches == [2]  # one transaction, not one per record
    log.stop()


def test_a_store_that_keeps_failing_is_counted_not_silent(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[int] = []

    def down(recs: Any) -> None:
        tries.append(len(recs))
        raise ConnectionError("audit store down")

    monkeypatch.setattr(ledger, "record_decisions", down)
    log = AuditLog(ledger, sleep=lambda _s: None)
    before = metrics.AUDIT_FAILURES._value.get()
    _submit(log, 1)
    log.flush()
    assert len(tries) == 3  # retried, then given up
    assert metrics.AUDIT_FAILURES._value.get() == before + 1
    log.stop()
