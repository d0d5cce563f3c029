"""ASGI entry point for uvicorn: ``serving.main:app`` (each worker process imports it)."""

import os

from serving import logs
from serving.app import create_app

if os.environ.get("ROUTECAST_JSON_LOGS", "1") == "1":
    logs.configure(os.environ.get("ROUTECAST_LOG_LEVEL", "INFO"))

app = create_app()
