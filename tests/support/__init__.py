"""Helpers shared across the test packages (one copy each)."""
