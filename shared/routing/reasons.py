"""Why a decision answered what it did: one enum, so the API's metrics and the status page never match free text.

The value is the text the decision logs and `analyze` shows (the same strings as before the enum); `label` is the
bounded `reason` label of the API's decision counter; `of_member` says the same of one member (status page rows).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    PICKED = "picked"
    PREFIX = "prefix"  # the prefix stage (routing/prefix.py): the holder of the prompt, or its overflow
    FALLBACK = "pool_fallback is set"
    UNKNOWN_POOL = "unknown pool"
    NOT_SCORED = "pool not fetched or scored yet"
    NOT_MEMBERS = "no candidate is a known pool member"
    NOT_ENABLED = "no candidate enabled on BIG-IP"
    NO_METRICS = "no candidate has usable metrics"
    STALE = "every candidate's metrics are stale"
    ABOVE_THRESHOLDS = "every candidate is above the thresholds"
    NO_POSITIVE_SCORE = "no candidate has a positive score"
    REDIS_UNAVAILABLE = "redis unavailable"  # the worker could not read the pool from Redis (never loaded)

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def of_member(self) -> str:
        return _OF_MEMBER.get(self, self.value)


_LABELS = {
    Reason.PICKED: "picked",
    Reason.PREFIX: "prefix",
    Reason.FALLBACK: "pool_fallback",
    Reason.UNKNOWN_POOL: "unknown_pool",
    Reason.NOT_SCORED: "not_scored",
    Reason.NOT_MEMBERS: "not_members",
    Reason.NOT_ENABLED: "bigip_state",
    Reason.NO_METRICS: "no_metrics",
    Reason.STALE: "stale",
    Reason.ABOVE_THRESHOLDS: "thresholds",
    Reason.NO_POSITIVE_SCORE: "zero_score",
    Reason.REDIS_UNAVAILABLE: "redis_unavailable",
}

_OF_MEMBER = {
    Reason.NOT_ENABLED: "not enabled on BIG-IP",
    Reason.NO_METRICS: "no usable metrics (failed, stale or missing)",
    Reason.STALE: "metrics older than stale_after",
    Reason.ABOVE_THRESHOLDS: "above a fallback threshold",
    Reason.NO_POSITIVE_SCORE: "score is 0 or less",
    Reason.NOT_SCORED: "not scored yet",
}
