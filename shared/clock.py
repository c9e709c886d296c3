"""Clock skew against one reference, Redis's `TIME`: measured, exported, and warned about.

Freshness compares clocks of different hosts: the scraper stamps `scraped_at` with its clock, the API and the
scorer compare it with theirs against `stale_after`. A host whose clock runs ahead or behind shifts every
member's age by that much, so members would turn stale early (or too late). Redis is the one server every process
talks to, so each process measures its own clock against Redis's: `skew = local - redis`, with the local time
taken at the midpoint of the TIME round trip (the error is at most half the round trip). Two hosts' skews
subtract to their skew against each other.

`SkewMonitor.check` records the value in `llmsched_clock_skew_seconds` and logs one WARNING when the skew,
less the round-trip uncertainty, exceeds `WARN_FRACTION` of `stale_after` (and one INFO when it is back under).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from loguru import logger

from llmsched.shared.telemetry import CLOCK_SKEW

WARN_FRACTION = 0.1  # of stale_after: 0.3 s for the default 3 s; NTP keeps hosts within milliseconds
CHECK_EVERY_S = 30.0


def measure_skew(client: redis.Redis, clock: Callable[[], float] = time.time) -> tuple[float, float]:
    """(this host's clock minus Redis's, uncertainty), in seconds, from one TIME round trip."""
    before = clock()
    seconds, micros = client.time()
    after = clock()
    return (before + after) / 2 - (seconds + micros / 1e6), (after - before) / 2


class SkewMonitor:
    """Measures, exports and judges this process's clock skew; `check` once per `CHECK_EVERY_S`."""

    def __init__(self, process: str, stale_after: Callable[[], float], clock: Callable[[], float] = time.time) -> None:
        self.process = process
        self.stale_after = stale_after
        self.clock = clock  # this host's clock (a test passes a skewed one)
        self.warned = False
        self.last: float | None = None

    def limit(self) -> float:
        return WARN_FRACTION * self.stale_after()

    def check(self, client: redis.Redis) -> float | None:
        """The measured skew (None when Redis did not answer: the outage is someone else's to report)."""
        try:
            skew, uncertainty = measure_skew(client, self.clock)
        except redis.RedisError:
            return None
        self.last = skew
        CLOCK_SKEW.set(skew)
        limit = self.limit()
        too_far = abs(skew) - uncertainty > limit
        if too_far and not self.warned:
            logger.warning(
                "{}: this host's clock is {:+.3f} s off Redis's (more than {:g} s, {:.0%} of stale_after "
                "{:g} s): member ages are wrong by as much; synchronise the clocks (NTP) of every llmsched host",
                self.process,
                skew,
                limit,
                WARN_FRACTION,
                self.stale_after(),
            )
        elif not too_far and self.warned:
            logger.info("{}: clock back within {:g} s of Redis's ({:+.3f} s)", self.process, limit, skew)
        self.warned = too_far
        return skew
