"""The operations console at ``/console``: server-rendered pages on the same app and data as
the API (orders, nodes, KPIs, models, shadow and backtest). No build step, no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from serving.console.pages import router

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
