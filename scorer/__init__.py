"""Scoring of LLM inference servers: the original's 16 modes as pure functions of the members' metrics."""

from llmsched.scorer.modes import MODE_NAMES, compute_scores

__all__ = ["MODE_NAMES", "compute_scores"]
