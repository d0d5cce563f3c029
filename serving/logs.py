"""JSON log lines, one per event, carrying the decision id so a decision can be traced."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        body.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure_from_environment() -> None:
    """What a served process logs: JSON lines at ``ROUTECAST_LOG_LEVEL`` (INFO), unless
    ``ROUTECAST_JSON_LOGS=0`` leaves logging as the host configured it."""
    if os.environ.get("ROUTECAST_JSON_LOGS", "1") == "1":
        configure(os.environ.get("ROUTECAST_LOG_LEVEL", "INFO"))


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
