"""ASGI entry point for uvicorn: ``serving.main:app`` (each worker process imports it)."""

from serving import logs
from serving.app import create_app

logs.configure_from_environment()

app = create_app()
