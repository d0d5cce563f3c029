"""Backtest: policies played against one simulated world, scored against a perfect-foresight bound."""
