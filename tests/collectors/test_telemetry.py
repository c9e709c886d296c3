"""Collector and scorer metrics: what the poller, the scraper, the config watcher and the scoring collector record,
and the per-process /metrics endpoint (over real HTTP on 127.0.0.1, parsed with prometheus_client's parser).

Metric objects are per process, so each test reads its own pool's series (or a difference) rather than totals.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from llmsched.collectors.f5_client import F5Client
from llmsched.collectors.poller import Poller
from llmsched.collectors.scraper import Scraper
from llmsched.collectors.telemetry import ScrapeTelemetry, error_kind, observe_all
from llmsched.emulators.engine import bound_port as engine_port
from llmsched.emulators.engine import serve_engine
from llmsched.emulators.engine_state import EngineSpec
from llmsched.scorer.jobs import record_latency
from llmsched.scorer.telemetry import ScoringCollector
from llmsched.shared import scrape_stats
from llmsched.shared import telemetry as t
from llmsched.shared.config_model import Config, MetricsConfig, PoolConfig, SchedulerConfig, TelemetryConfig
from llmsched.shared.members import Member
from llmsched.shared.reload import ConfigWatcher
from llmsched.shared.scoring_queue import enqueue_scoring
from llmsched.shared.secrets import Secret

from tests.collectors.conftest import BigIP, ManualClock
from tests.conftest import free_port
from tests.helpers import make_store


def value(registry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return {f.name: f for f in text_string_to_metric_families(resp.read().decode())}


# --- poller ------------------------------------------------------------------------------------------------------
async def test_a_poll_records_reads_members_per_status_login_and_cycle_time(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    pool = PoolConfig(name="vllm_pool", engine_type="vllm")
    await bigip.set_member("vllm_pool", "10.0.0.2:8000", "disabled")
    logins, cycles = (
        value(t.POLLER, "llmsched_bigip_logins_total", result="ok"),
        value(t.POLLER, "llmsched_bigip_poll_duration_seconds_count"),
    )
    reads = value(t.POLLER, "llmsched_bigip_polls_total", pool=pool.key)
    poller = Poller(
        Config(f5=bigip.f5_config(), pools=(pool,), source="test"),
        make_store(redis_url),
        client_factory=lambda c: F5Client(c.f5),
        clock=clock,
    )
    try:
        await poller.poll_once()
        await poller.poll_once()
    finally:
        await poller.close()
    assert value(t.POLLER, "llmsched_bigip_polls_total", pool=pool.key) == reads + 2
    assert value(t.POLLER, "llmsched_bigip_logins_total", result="ok") == logins + 1  # the token is reused
    assert value(t.POLLER, "llmsched_bigip_poll_duration_seconds_count") == cycles + 2
    assert value(t.POLLER, "llmsched_pool_members", pool=pool.key, status="enabled") == 2
    assert value(t.POLLER, "llmsched_pool_members", pool=pool.key, status="disabled") == 1
    assert value(t.POLLER, "llmsched_pool_members", pool=pool.key, status="down") == 0
    assert value(t.POLLER, "llmsched_bigip_last_success_timestamp_seconds", pool=pool.key) == clock.now
    # Every error kind exists at 0 from the first read, so a first failure shows in rate().
    assert all(
        t.POLLER.get_sample_value("llmsched_bigip_poll_errors_total", {"pool": pool.key, "kind": kind}) is not None
        for kind in t.POLL_ERROR_KINDS
    )


async def test_failed_reads_are_counted_by_kind_and_refused_logins_as_failed(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    missing = PoolConfig(name="telemetry_missing_pool", engine_type="vllm")
    failed = value(t.POLLER, "llmsched_bigip_logins_total", result="failed")
    poller = Poller(
        Config(f5=bigip.f5_config(), pools=(missing,), source="test"),
        make_store(redis_url),
        client_factory=lambda c: F5Client(c.f5),
        clock=clock,
    )
    try:
        await poller.poll_once()
    finally:
        await poller.close()
    assert value(t.POLLER, "llmsched_bigip_poll_errors_total", pool=missing.key, kind="not_found") == 1
    wrong = Poller(
        Config(f5=replace(bigip.f5_config(), password=Secret("wrong")), pools=(missing,), source="t"),
        make_store(redis_url),
        client_factory=lambda c: F5Client(c.f5),
        clock=clock,
    )
    try:
        await wrong.poll_once()
    finally:
        await wrong.close()
    assert value(t.POLLER, "llmsched_bigip_logins_total", result="failed") == failed + 1
    assert value(t.POLLER, "llmsched_bigip_poll_errors_total", pool=missing.key, kind="auth") == 1


def test_error_kinds_follow_the_error_classes() -> None:
    from llmsched.collectors.f5_errors import F5AuthError, F5NotFound, F5TLSError, F5Unavailable, F5Unreachable

    assert error_kind(F5AuthError("login", 401)) == "auth"
    assert error_kind(F5NotFound("pool p", 404)) == "not_found"
    assert error_kind(F5Unavailable("pool p", 503)) == "unavailable"
    assert error_kind(F5TLSError("pool p", "untrusted")) == "tls"
    assert error_kind(F5Unreachable("pool p", "refused")) == "unreachable"
    assert error_kind(RuntimeError("bug")) == "internal"


async def test_gauges_of_a_pool_removed_from_the_config_disappear(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    pool = PoolConfig(name="vllm_pool", engine_type="vllm", partition="Common")
    config = Config(f5=bigip.f5_config(), pools=(pool,), source="test")
    poller = Poller(config, make_store(redis_url), client_factory=lambda c: F5Client(c.f5), clock=clock)
    try:
        await poller.poll_once()
        assert t.POLLER.get_sample_value("llmsched_pool_members", {"pool": pool.key, "status": "enabled"}) == 3
        other = PoolConfig(name="empty_pool", engine_type="vllm")
        poller.apply_config(Config(f5=bigip.f5_config(), pools=(other,), source="test"))
        await poller.poll_once()
    finally:
        await poller.close()
    assert t.POLLER.get_sample_value("llmsched_pool_members", {"pool": pool.key, "status": "enabled"}) is None
    assert t.POLLER.get_sample_value("llmsched_pool_members", {"pool": "empty_pool:Common", "status": "enabled"}) == 0


# --- scraper -----------------------------------------------------------------------------------------------------
async def test_scrapes_count_errors_and_stale_members_per_pool(redis_url: str) -> None:
    store = make_store(redis_url)
    runner = await serve_engine("127.0.0.1", 0, EngineSpec(engine="vllm"))
    down = free_port()  # nothing listens there: every scrape of it fails
    pool = PoolConfig(name="telemetry_scrape_pool", engine_type="vllm")
    members = [Member(address="127.0.0.1", port=engine_port(runner)), Member(address="127.0.0.1", port=down)]
    store.set_members(
        pool.key,
        {"fetched_at": time.time(), "members": [m.to_dict() for m in members], "error": None, "error_at": None},
    )
    config = Config(pools=(pool,), source="test", scheduler=SchedulerConfig(stale_after=30.0))
    async with aiohttp.ClientSession() as session:
        scraper = Scraper(config, store, session)
        await scraper.run_cycle()
        await scraper.run_cycle()
    await runner.cleanup()
    assert value(t.SCRAPER, "llmsched_scrapes_total", pool=pool.key) == 4
    assert value(t.SCRAPER, "llmsched_scrape_errors_total", pool=pool.key) == 2
    assert value(t.SCRAPER, "llmsched_scrape_duration_seconds_count", pool=pool.key) == 4
    live = CollectorRegistry()
    live.register(scraper.telemetry)
    assert value(live, "llmsched_scrape_stale_members", pool=pool.key) == 1  # never scraped fine
    assert value(live, "llmsched_scrape_oldest_success_timestamp_seconds", pool=pool.key) == 0


def test_stale_members_are_counted_when_metrics_are_read_not_when_the_pool_was_scraped() -> None:
    clock = [1000.0]
    telemetry = ScrapeTelemetry(clock=lambda: clock[0])
    docs = {"a:1": {"status": "ok", "scraped_at": 1000.0}, "b:1": {"status": "ok", "scraped_at": 998.5}}
    telemetry.pool_scraped("p:Common", docs, stale_after=3.0, now=1000.0)
    live = CollectorRegistry()
    live.register(telemetry)
    assert value(live, "llmsched_scrape_stale_members", pool="p:Common") == 0
    clock[0] = 1002.0  # no scrape since: b's data is 3.5 s old
    assert value(live, "llmsched_scrape_stale_members", pool="p:Common") == 1
    clock[0] = 1003.5
    assert value(live, "llmsched_scrape_stale_members", pool="p:Common") == 2
    assert value(live, "llmsched_scrape_oldest_success_timestamp_seconds", pool="p:Common") == 998.5
    failed = {"a:1": {"status": "error", "scraped_at": 1003.5}, "b:1": {"status": "ok", "scraped_at": 1003.5}}
    telemetry.pool_scraped("p:Common", failed, stale_after=3.0, now=1003.5)  # a failure keeps a's last success
    assert value(live, "llmsched_scrape_stale_members", pool="p:Common") == 1


async def test_an_overrunning_cycle_reports_its_duration_lateness_and_skipped_ticks(
    redis_url: str, logs: list[str]
) -> None:
    store = make_store(redis_url)
    runner = await serve_engine("127.0.0.1", 0, EngineSpec(engine="vllm"))
    port = engine_port(runner)
    async with aiohttp.ClientSession() as admin:
        async with admin.post(f"http://127.0.0.1:{port}/_emulator/mode", json={"mode": "hang"}) as resp:
            assert resp.status == 200
    pool = PoolConfig(name="overrun_pool", engine_type="vllm", metrics=MetricsConfig(timeout=0.35))
    store.set_members(
        pool.key,
        {"fetched_at": time.time(), "members": [Member(address="127.0.0.1", port=port).to_dict()], "error": None},
    )
    config = Config(pools=(pool,), source="test", scheduler=SchedulerConfig(metrics_fetch_interval=100))
    skipped_before = value(t.SCRAPER, "llmsched_scrape_skipped_ticks_total")
    async with aiohttp.ClientSession() as session:
        scraper = Scraper(config, store, session)
        stop = asyncio.Event()
        task = asyncio.ensure_future(scraper.run(stop))
        while scraper.skipped_ticks == 0:
            await asyncio.sleep(0.05)
        stop.set()
        await task
    await runner.cleanup()
    # The hanging engine holds every cycle for its 0.35 s timeout: at a 0.1 s interval, 2 or more ticks pass by.
    assert scraper.skipped_ticks >= 2
    assert value(t.SCRAPER, "llmsched_scrape_skipped_ticks_total") - skipped_before == scraper.skipped_ticks
    warning = next(line for line in logs if "scrape cycle took" in line)
    took = float(warning.split("scrape cycle took ")[1].split(" s")[0])
    assert took >= 0.35 and "after its tick; the interval is 0.100 s" in warning
    [stats] = scrape_stats.read(store, "scraper", time.time())
    assert stats["skipped_ticks"] == scraper.skipped_ticks and stats["cycle_duration"] >= 0.35
    assert stats["members"] == 1 and stats["targets"] == 1 and stats["interval"] == 0.1


# --- every process: config reloads --------------------------------------------------------------------------------
def test_config_reloads_are_counted_as_applied_or_rejected(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_F5_PW", "pw")
    doc = {"f5": {"host": "127.0.0.1", "password_env": "TEST_F5_PW"}, "pools": [{"name": "p", "engine_type": "vllm"}]}
    path = tmp_path / "scheduler-config.yaml"
    path.write_text(yaml.safe_dump(doc))
    from llmsched.shared.config import load_config

    watcher = ConfigWatcher(path, load_config(path), on_change=lambda new: None, process="test")
    applied, rejected = (
        value(t.COMMON, "llmsched_config_reloads_total", result="applied"),
        value(t.COMMON, "llmsched_config_reloads_total", result="rejected"),
    )
    path.write_text(yaml.safe_dump({**doc, "scheduler": {"pool_fetch_interval": 5}}))
    assert watcher.check() is not None
    path.write_text(yaml.safe_dump({**doc, "scheduler": {"pool_fetch_interval": 0}}))
    assert watcher.check() is None
    assert value(t.COMMON, "llmsched_config_reloads_total", result="applied") == applied + 1
    assert value(t.COMMON, "llmsched_config_reloads_total", result="rejected") == rejected + 1


# --- the per-process endpoint --------------------------------------------------------------------------------------
def test_a_process_endpoint_serves_its_role_its_extra_collectors_and_process_metrics(redis_url: str) -> None:
    store = make_store(redis_url)
    enqueue_scoring(store, "p1:Common", "scrape")
    record_latency(store, "p1:Common", "scrape", 0.004)
    record_latency(store, "p1:Common", "scrape", 0.2)
    port = free_port()
    server = t.serve(
        "scorer", TelemetryConfig(host="127.0.0.1", scorer_port=port), extra=[ScoringCollector(store)], env={}
    )
    assert server is not None
    try:
        fams = scrape(port)
    finally:
        server.shutdown()
        server.server_close()
    assert "llmsched_config_reloads" in fams and "llmsched_rescores_enqueued" in fams
    assert "llmsched_decisions" not in fams and "llmsched_bigip_polls" not in fams  # other roles' metrics
    assert "process_cpu_seconds" in fams
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert samples[("llmsched_scoring_queue_depth", ())] == 1
    assert samples[("llmsched_redis_up", ())] == 1
    assert samples[("llmsched_scoring_latency_seconds_count", (("reason", "scrape"),))] == 2
    assert samples[("llmsched_scoring_latency_seconds_bucket", (("le", "0.005"), ("reason", "scrape")))] == 1
    assert samples[("llmsched_scoring_latency_seconds_sum", (("reason", "scrape"),))] == pytest.approx(0.204)


def test_the_port_can_be_overridden_by_the_environment_or_turned_off(redis_url: str) -> None:
    port = free_port()
    server = t.serve("poller", TelemetryConfig(host="127.0.0.1", poller_port=1), env={t.METRICS_PORT_ENV: str(port)})
    try:
        assert "llmsched_bigip_polls" in scrape(port)
    finally:
        server.shutdown()
        server.server_close()
    assert t.serve("poller", TelemetryConfig(host="127.0.0.1", poller_port=0), env={}) is None
    assert t.serve("poller", TelemetryConfig(host="127.0.0.1"), env={t.METRICS_PORT_ENV: "0"}) is None


def test_a_port_in_use_turns_the_endpoint_off_with_an_error_instead_of_stopping_the_process(logs) -> None:
    port = free_port()
    first = t.serve("scraper", TelemetryConfig(host="127.0.0.1", scraper_port=port), env={})
    try:
        assert t.serve("scraper", TelemetryConfig(host="127.0.0.1", scraper_port=port), env={}) is None
    finally:
        first.shutdown()
        first.server_close()
    assert any("metrics endpoint off: cannot listen on 127.0.0.1:" in line for line in logs)
    assert t.serve("scraper", TelemetryConfig(), env={t.METRICS_PORT_ENV: "http"}) is None
    assert any("is not a port number" in line for line in logs)


def test_every_exported_name_has_the_llmsched_prefix() -> None:
    assert all(name.startswith(t.PREFIX) for name in t.exported_names())


def test_durations_recorded_in_bulk_fill_the_histogram_as_one_observe_each() -> None:
    registry = CollectorRegistry()
    buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    one = Histogram("one_by_one", "d", ("pool",), buckets=buckets, registry=registry).labels("p")
    bulk = Histogram("in_bulk", "d", ("pool",), buckets=buckets, registry=registry).labels("p")
    amounts = [0.0, 0.004, 0.005, 0.0050001, 0.01, 0.3, 1.0, 9.99, 10.0, 10.5, 1e9, 0.25, 0.25, 0.0001]
    for amount in amounts:
        one.observe(amount)
    observe_all(bulk, amounts)

    def read(name: str) -> dict:
        family = next(m for m in registry.collect() if m.name == name)
        return {(s.name[len(name) :], s.labels.get("le")): s.value for s in family.samples if "created" not in s.name}

    assert len(read("one_by_one")) == len(buckets) + 3  # buckets, +Inf, count, sum
    assert read("one_by_one") == read("in_bulk")


def test_a_histogram_without_the_known_internals_gets_one_observe_per_duration() -> None:
    seen: list[float] = []

    class Plain:
        def observe(self, amount: float) -> None:
            seen.append(amount)

    observe_all(Plain(), [0.1, 0.2])
    assert seen == [0.1, 0.2]
