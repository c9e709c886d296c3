"""The decision pipeline, pure and I/O-free: filters (BIG-IP state, staleness, thresholds) then a weighted pick.

Scores are computed ahead of time by the scorer; the API and the routing simulator both run exactly this code.
"""

from llmsched.shared.routing.decide import Decision, decide

__all__ = ["Decision", "decide"]
