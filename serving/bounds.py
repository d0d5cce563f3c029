"""Bounds of every value the HTTP API accepts, declared once as annotated types.

They live in the pydantic schemas (so the OpenAPI document states them and a bad value is a
422 naming the field) and are chosen so that nothing valid can overflow a database column,
the time-zone arithmetic or a bind-parameter list, and so that SQLite and PostgreSQL refuse
the same inputs: ids fit the ``String(64)``/``String(128)`` columns PostgreSQL enforces and
SQLite ignores; NUL and other control characters (which PostgreSQL text and JSONB refuse)
are refused up front; lone surrogates are refused by pydantic's string validation.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field, StringConstraints

from routing.calendar import EARLIEST, LATEST, within_bounds

#: No control characters (NUL included); PostgreSQL cannot store NUL in text or JSONB.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_ID = 64  # node ids and SKUs: String(64) columns
MAX_LONG_ID = 128  # order, line, event and decision ids: String(128) columns
MAX_TEXT = 256
#: Units on one order line; far above any real basket, far below float/int64 trouble.
MAX_LINE_QTY = 1_000_000
#: Units in one count or delta; stock columns are 64-bit.
MAX_STOCK_QTY = 1_000_000_000
#: Lines per order and line ids per rejection/shipment: far below the 65,535 bind parameters
#: PostgreSQL allows in one statement.
MAX_LINES = 1000
#: Cursors over 32-bit integer keys (e.g. event positions).
MAX_INT4 = 2**31 - 1
#: Orders per node per day; the column is a 32-bit integer.
MAX_DAILY_CAPACITY = 1_000_000

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]
LongId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LONG_ID, pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=TEXT_PATTERN)]

#: Path parameters: same bounds as the ids they name.
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)]
PathLongId = Annotated[str, Path(min_length=1, max_length=MAX_LONG_ID, pattern=ID_PATTERN)]
QueryLongId = Annotated[str, Query(min_length=1, max_length=MAX_LONG_ID, pattern=ID_PATTERN)]

_RANGE = f"between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"


def _bounded_time(value: datetime) -> datetime:
    if not within_bounds(value):
        raise ValueError(f"must lie {_RANGE}")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-01-01T10:00:00Z")
    return value


def _bounded_date(value: date) -> date:
    if not within_bounds(value):
        raise ValueError(f"must lie {_RANGE}")
    return value


#: A timestamp with an offset, in the range the service stores.
AwareTime = Annotated[
    datetime,
    AfterValidator(_aware),
    AfterValidator(_bounded_time),
    Field(description=f"ISO 8601 with a UTC offset, {_RANGE}"),
]
#: A timestamp with or without offset (calendars: naive means the node's local time).
LocalTime = Annotated[
    datetime,
    AfterValidator(_bounded_time),
    Field(description=f"ISO 8601; without an offset it is the node's local time; {_RANGE}"),
]
BoundedDate = Annotated[date, AfterValidator(_bounded_date), Field(description=_RANGE)]
