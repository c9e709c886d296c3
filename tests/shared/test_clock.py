"""Clock skew against Redis's TIME: measured at the round trip's midpoint against a real Redis,
exported as llmsched_clock_skew_seconds, warned about once above a tenth of stale_after and once when back."""

from __future__ import annotations

import time

import pytest
import redis
from loguru import logger

from llmsched.shared.clock import WARN_FRACTION, SkewMonitor, measure_skew
from llmsched.shared.telemetry import COMMON
from llmsched.shared.watchdog import RedisWatchdog

from tests.helpers import make_store


def test_this_hosts_clock_measures_as_its_offset_from_redis_time(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    skew, uncertainty = measure_skew(client)
    assert abs(skew) <= uncertainty + 0.01  # the same host: the same clock, up to the round trip
    ahead, _ = measure_skew(client, clock=lambda: time.time() + 5.0)  # a host whose clock runs 5 s ahead
    assert ahead == pytest.approx(5.0, abs=0.05)


def test_a_skew_above_a_tenth_of_stale_after_warns_once_then_says_when_it_is_back(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    offset = [0.0]
    monitor = SkewMonitor("scraper", stale_after=lambda: 3.0, clock=lambda: time.time() + offset[0])
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["level"].name + " " + m.record["message"]), level="INFO")
    try:
        assert monitor.check(client) == pytest.approx(0.0, abs=0.05)
        offset[0] = -(WARN_FRACTION * 3.0 + 0.2)  # 0.5 s behind: above 0.3 s
        for _ in range(3):
            monitor.check(client)
        offset[0] = 0.0
        monitor.check(client)
    finally:
        logger.remove(sink)
    assert [line.split(" ", 1)[0] for line in lines] == ["WARNING", "INFO"]
    assert "-0.5" in lines[0] and "0.3 s" in lines[0] and "NTP" in lines[0]


def test_the_skew_is_exported_and_measured_by_the_redis_watchdog(redis_url: str) -> None:
    watchdog = RedisWatchdog(make_store(redis_url), "scorer", stale_after=lambda: 3.0)
    watchdog.skew.clock = lambda: time.time() - 2.0
    watchdog.probe()
    assert COMMON.get_sample_value("llmsched_clock_skew_seconds") == pytest.approx(-2.0, abs=0.05)
