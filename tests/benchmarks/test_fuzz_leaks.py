"""The fuzzer's leak check: internals in an answer fail it, the client's own input quoted back
in a 422 does not (otherwise a fuzzed string like ``"SELECT "`` would be reported as a leak)."""

from __future__ import annotations

from benchmarks.fuzz import leaked


def test_stack_trace_and_sql_are_leaks() -> None:
    assert leaked('Traceback (most recent call last):\n  File "x.py"') == ["Traceback", 'File "']
    assert leaked("psycopg.errors.UniqueViolation: INSERT INTO orders") == ["psycopg", "INSERT "]


def test_clean_problem_is_not_a_leak() -> None:
    assert leaked('{"title": "Unprocessable", "errors": [{"field": "qty"}]}') == []


def test_input_quoted_back_is_not_a_leak() -> None:
    sent = '{"carrier": "SELECT x"}'
    body = '{"errors": [{"field": "carrier", "input": "SELECT x"}]}'
    assert leaked(body, sent) == []
    # but internals the request did not carry still count
    assert leaked(body + " sqlalchemy.exc", sent) == ["sqlalchemy"]
