"""Reservations per second on SQLite and PostgreSQL: 16 concurrent clients (4 processes × 4
threads) placing and releasing orders on a few hot SKUs, which are restocked as a retailer's
hot SKUs are, then the storm's full check of the ledger (invariants, history, units oversold).

Reuses ``benchmarks.storm`` with a placement-heavy mix: 65 % place (1–3 lines of 1–3 units),
25 % cancel, 10 % receipts of 12–24 units on a random hot row (a delta through the ledger's
own stock path, logged as a movement and checked against the history like every other
change). Receipts bring slightly more than placements net of cancels take, so the hot rows
stay contended but stocked: acknowledged reservations measure what the ledger can grant, not
how fast cancels return stock. Both acknowledged reservations and placements decided
(reserved, or refused for want of stock) are reported, with the client threads' and their
PostgreSQL sessions' CPU per operation. PostgreSQL runs when a server answers on
127.0.0.1:5432.

    python -m benchmarks.bench_reservations [--quick]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.machine import stamp
from benchmarks.reliability import pg_database, sqlite_file
from benchmarks.storm import run_storm

MIX = (("place", 65), ("cancel", 25), ("adjust", 10))
RECEIPT_UNITS = (12, 24)
PROCESSES, THREADS = 4, 4


def _pg_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def run(quick: bool) -> dict[str, Any]:
    seconds = 8 if quick else 30
    out: dict[str, Any] = {
        **stamp(),
        "quick": quick,
        "clients": PROCESSES * THREADS,
        "mix": MIX,
        "receipt_units": RECEIPT_UNITS,
    }
    backends: list[tuple[str, Any]] = [("sqlite", sqlite_file)]
    if _pg_up():
        backends.append(("postgresql", pg_database))
    else:
        out["postgresql"] = {"skipped": "no PostgreSQL on 127.0.0.1:5432"}
    for name, db in backends:
        with db() as url:
            r = run_storm(
                url,
                processes=PROCESSES,
                threads=THREADS,
                seconds=seconds,
                max_ops=10**9,
                mix=MIX,
                receipt_units=RECEIPT_UNITS,
            )
        out[name] = r
        print(
            f"reservations {name}: {r['reservations_per_second']}/s "
            f"(placements decided {r['placements_per_second']}/s), "
            f"CPU ms/op client {r['client_cpu_ms_per_op']} server {r['server_cpu_ms_per_op']}, "
            f"oversold {r['oversold_units']}, problems {r['problem_count']}",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
