"""``python -m serving.cli``."""

from serving.cli import app

app()
