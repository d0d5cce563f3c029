"""Synthetic US retail network with hidden ground truth, emitted as canonical tables."""

from simulation.scales import SCALES, ScaleConfig
from simulation.world import WorldSummary, generate_world, history_days

__all__ = ["SCALES", "ScaleConfig", "WorldSummary", "generate_world", "history_days"]
