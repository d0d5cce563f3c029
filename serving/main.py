"""ASGI entry point for uvicorn: ``serving.main:app``."""

from serving.app import create_app

app = create_app()
