"""The scraper against engine emulators over real HTTP(S) on 127.0.0.1 (and ::1) and a real Redis."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from loguru import logger

from llmsched.collectors.scrape_plan import metrics_url, plan_targets
from llmsched.collectors.scraper import Scraper
from llmsched.emulators.engine import bound_port as engine_port
from llmsched.emulators.engine import build_engine_app
from llmsched.emulators.engine_state import EngineSpec
from llmsched.emulators.tls import CertFiles, generate_self_signed
from llmsched.scorer.step import score_pool
from llmsched.shared.config_model import (
    Config,
    EngineVariant,
    MetricsConfig,
    PoolConfig,
    SchedulerConfig,
)
from llmsched.shared.members import Member
from llmsched.shared.secrets import Secret
from llmsched.shared.store import Store

from tests.helpers import make_store

REPO = Path(__file__).resolve().parents[2]
POOL = "vllm_pool:Common"


@dataclass
class Engine:
    runner: web.AppRunner
    host: str
    port: int
    session: aiohttp.ClientSession
    scheme: str = "http"

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def admin(self, path: str, body: dict) -> dict:
        async with self.session.post(f"{self.base}/_emulator{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def force(self, **values: float) -> None:
        await self.admin("/metrics", values)

    async def stop(self) -> None:
        await self.runner.cleanup()


@dataclass
class Harness:
    store: Store
    session: aiohttp.ClientSession  # the scraper's session
    admin_session: aiohttp.ClientSession
    certs: list[CertFiles] = field(default_factory=list)
    engines: list[Engine] = field(default_factory=list)

    async def engine(self, host: str = "127.0.0.1", tls: bool = False, **spec: object) -> Engine:
        """Start an engine emulator; with `tls`, serve it over HTTPS with a fresh self-signed certificate."""
        runner = web.AppRunner(
            build_engine_app(EngineSpec(**spec)),
            access_log=None,  # type: ignore[arg-type]
            shutdown_timeout=1.0,
        )
        await runner.setup()
        ctx = None
        if tls:
            self.certs.append(generate_self_signed())
            ctx = self.certs[-1].server_context()
        await web.TCPSite(runner, host, 0, ssl_context=ctx).start()
        engine = Engine(runner, host, engine_port(runner), self.admin_session, "https" if tls else "http")
        self.engines.append(engine)
        return engine

    def members(self, pool_key: str, *addresses: tuple[str, int]) -> list[Member]:
        ms = [Member(address=a, port=p, name=f"{a}:{p}") for a, p in addresses]
        self.store.set_members(
            pool_key, {"fetched_at": time.time(), "members": [m.to_dict() for m in ms], "error": None, "error_at": None}
        )
        return ms

    def scraper(
        self,
        *pools: PoolConfig,
        variants: tuple[EngineVariant, ...] = (),
        interval_ms: int = 1000,
        store: Store | None = None,
    ) -> Scraper:
        return Scraper(config(*pools, variants=variants, interval_ms=interval_ms), store or self.store, self.session)


def config(*pools: PoolConfig, variants: tuple[EngineVariant, ...] = (), interval_ms: int = 1000) -> Config:
    return Config(
        pools=pools,
        engines_metrics_keys=variants,
        source="test",
        scheduler=SchedulerConfig(metrics_fetch_interval=interval_ms, stale_after=60.0),
    )


def pool(engine_type: str = "vllm", name: str = "vllm_pool", **metrics: object) -> PoolConfig:
    return PoolConfig(name=name, engine_type=engine_type, metrics=MetricsConfig(**metrics))  # type: ignore[arg-type]


@pytest.fixture()
async def h(redis_url: str) -> AsyncIterator[Harness]:
    async with (
        aiohttp.ClientSession() as session,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as admin_session,
    ):
        harness = Harness(make_store(redis_url), session, admin_session)
        yield harness
        for engine in harness.engines:
            await engine.stop()
        for cert in harness.certs:
            cert.remove()


@pytest.fixture()
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


def member_id(engine: Engine) -> str:
    return f"{engine.host}:{engine.port}"


# --- engines and metric names ------------------------------------------------------------------------------
async def test_old_and_new_vllm_kv_names_are_both_read(h: Harness):
    old, new = await h.engine(kv_name="old"), await h.engine(kv_name="new")
    for e in (old, new):
        await e.force(waiting=3, running=2, kv=0.25)
    h.members(POOL, (old.host, old.port), (new.host, new.port))
    docs = await h.scraper(pool()).scrape_pool(pool())
    for e in (old, new):
        doc = docs[member_id(e)]
        assert doc["status"] == "ok", doc
        assert doc["metrics"] == {"waiting_queue": 3.0, "cache_usage": 0.25, "running_req": 2.0}
        assert (doc["engine"], doc["detected_variant"], doc["detection_status"]) == ("vllm", "vllm", "ok")
    assert h.store.metrics(POOL) == docs


async def test_data_parallel_engines_are_summed_and_kv_averaged(h: Harness):
    e = await h.engine(dp=2)
    await e.admin("/metrics", {"engine": 0, "waiting": 2, "running": 3, "kv": 0.41})
    await e.admin("/metrics", {"engine": 1, "waiting": 5, "running": 4, "kv": 0.87})
    h.members(POOL, (e.host, e.port))
    doc = (await h.scraper(pool()).scrape_pool(pool()))[member_id(e)]
    assert doc["metrics"]["waiting_queue"] == 7.0 and doc["metrics"]["running_req"] == 7.0
    assert doc["metrics"]["cache_usage"] == pytest.approx(0.64)
    assert doc["kv_cache_max"] == 0.87


async def test_sglang_underscore_prefix_with_tp_copies_is_detected_in_auto_mode(h: Harness):
    e = await h.engine(engine="sglang", sglang_prefix="underscore", dp=2, tp=2, all_schedulers=True)
    await e.admin("/metrics", {"engine": 0, "waiting": 3, "running": 12, "kv": 0.5})
    await e.admin("/metrics", {"engine": 1, "waiting": 4, "running": 10, "kv": 0.7})
    h.members(POOL, (e.host, e.port))
    doc = (await h.scraper(pool("auto")).scrape_pool(pool("auto")))[member_id(e)]
    assert (doc["engine"], doc["detection_status"]) == ("sglang", "ok")
    assert doc["metrics"]["waiting_queue"] == 7.0 and doc["metrics"]["running_req"] == 22.0
    assert doc["metrics"]["cache_usage"] == pytest.approx(0.6)


async def test_partial_metrics_become_degraded_after_a_full_reading(h: Harness):
    e = await h.engine()
    h.members(POOL, (e.host, e.port))
    scraper = h.scraper(pool())
    assert (await scraper.scrape_pool(pool()))[member_id(e)]["detection_status"] == "ok"
    await e.admin("/mode", {"mode": "partial"})
    doc = (await scraper.scrape_pool(pool()))[member_id(e)]
    assert doc["status"] == "ok" and set(doc["metrics"]) == {"running_req"}
    assert doc["detection_status"] == "degraded"


# --- auth and TLS ------------------------------------------------------------------------------------------
async def test_bearer_api_key_is_sent_and_a_wrong_key_is_an_error_without_the_key(h: Harness, log_lines):
    e = await h.engine(api_key="engine-key-123")
    h.members(POOL, (e.host, e.port))
    good, bad = pool(api_key=Secret("engine-key-123")), pool(api_key=Secret("wrong-key-456"))
    assert (await h.scraper(good).scrape_pool(good))[member_id(e)]["status"] == "ok"
    doc = (await h.scraper(bad).scrape_pool(bad))[member_id(e)]
    assert doc["status"] == "error" and doc["error"].startswith("HTTP 401")
    stored = str(h.store.client.hgetall(h.store.keys.pool_metrics(POOL)))
    assert "wrong-key-456" not in stored and not any("wrong-key-456" in line for line in log_lines)


async def test_basic_auth_is_sent_and_a_wrong_password_is_an_error(h: Harness, log_lines):
    e = await h.engine(basic_auth=("metrics", "pw-good"))
    h.members(POOL, (e.host, e.port))
    good = pool(metric_user="metrics", metric_pwd=Secret("pw-good"))
    bad = pool(metric_user="metrics", metric_pwd=Secret("pw-bad-789"))
    assert (await h.scraper(good).scrape_pool(good))[member_id(e)]["status"] == "ok"
    doc = (await h.scraper(bad).scrape_pool(bad))[member_id(e)]
    assert doc["status"] == "error" and "HTTP 401" in doc["error"]
    assert not any("pw-bad-789" in line for line in log_lines)


async def test_https_is_verified_against_the_configured_ca(h: Harness):
    e = await h.engine(tls=True)
    h.members(POOL, (e.host, e.port))
    cert = h.certs[-1].cert_path
    trusted = pool(schema="https", ca_bundle=cert)
    doc = (await h.scraper(trusted).scrape_pool(trusted))[member_id(e)]
    assert doc["status"] == "ok", doc
    untrusted = pool(schema="https")  # system CAs only: the self-signed certificate is refused
    doc = (await h.scraper(untrusted).scrape_pool(untrusted))[member_id(e)]
    assert doc["status"] == "error" and doc["error"].startswith("TLS certificate not trusted")
    unverified = pool(schema="https", verify=False)
    assert (await h.scraper(unverified).scrape_pool(unverified))[member_id(e)]["status"] == "ok"


# --- failures ----------------------------------------------------------------------------------------------
async def test_a_down_engine_is_an_error_and_its_score_becomes_none_after_rescoring(h: Harness):
    up, doomed = await h.engine(), await h.engine()
    for e in (up, doomed):
        await e.force(waiting=1, running=1, kv=0.2)
    h.members(POOL, (up.host, up.port), (doomed.host, doomed.port))
    scraper = h.scraper(pool())
    await scraper.run_cycle()  # publishes the config, scrapes, stores
    before = {m["id"]: m["score"] for m in score_pool(h.store, POOL)["members"]}
    assert before[member_id(doomed)] is not None
    await doomed.stop()
    h.engines.remove(doomed)
    await scraper.run_cycle()
    doc = h.store.metrics(POOL)[member_id(doomed)]
    assert doc["status"] == "error" and doc["error"].startswith("cannot connect")
    assert doc["metrics"] == {} and doc["engine"] == "vllm" and doc["detection_status"] == "failed"
    after = {m["id"]: m["score"] for m in score_pool(h.store, POOL)["members"]}
    assert after[member_id(doomed)] is None and after[member_id(up)] is not None


async def test_a_hanging_engine_times_out(h: Harness):
    e = await h.engine()
    await e.admin("/mode", {"mode": "hang"})
    h.members(POOL, (e.host, e.port))
    p = pool(timeout=0.3)
    doc = (await h.scraper(p).scrape_pool(p))[member_id(e)]
    assert doc["status"] == "error" and doc["error"] == "timeout after 0.3 s"


@pytest.mark.parametrize("mode,error", [("error", "HTTP 500"), ("garbage", "malformed line 3")])
async def test_broken_metrics_responses_are_errors(h: Harness, mode: str, error: str):
    e = await h.engine()
    await e.admin("/mode", {"mode": mode})
    h.members(POOL, (e.host, e.port))
    doc = (await h.scraper(pool()).scrape_pool(pool()))[member_id(e)]
    assert doc["status"] == "error" and doc["error"].startswith(error), doc


async def raw_http_server(respond: bytes) -> tuple[asyncio.Server, int]:
    """A server that answers every request with the bytes `respond` and then closes: for framing faults."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(respond)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def http_response(body: bytes, length: int | None = None, chunked_end: bool = True, chunked: bool = False) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
    if chunked:
        tail = b"0\r\n\r\n" if chunked_end else b""
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n" + tail
    return head + b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


NO_FINAL_LF = (
    b'vllm:num_requests_running{engine="0",model_name="m"} 7.0\n'
    b'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0\n'
    b'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.3127'
)


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_complete_body_without_final_line_feed_is_scraped_last_line_included(h: Harness, chunked: bool):
    server, port = await raw_http_server(http_response(NO_FINAL_LF, chunked=chunked))
    async with server:
        h.members(POOL, ("127.0.0.1", port))
        doc = (await h.scraper(pool()).scrape_pool(pool()))[f"127.0.0.1:{port}"]
    assert doc["status"] == "ok", doc
    assert doc["metrics"] == {"waiting_queue": 2.0, "cache_usage": 0.3127, "running_req": 7.0}


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_cut_short_by_the_transport_is_an_incomplete_body_error(h: Harness, chunked: bool):
    # Content-Length promises more than arrives, or the chunked body never ends: the connection closes mid-body.
    raw = http_response(NO_FINAL_LF, length=len(NO_FINAL_LF) + 40, chunked=chunked, chunked_end=False)
    server, port = await raw_http_server(raw)
    async with server:
        h.members(POOL, ("127.0.0.1", port))
        doc = (await h.scraper(pool()).scrape_pool(pool()))[f"127.0.0.1:{port}"]
    assert doc["status"] == "error" and doc["error"].startswith("incomplete body"), doc


async def test_a_body_with_no_engine_metric_is_an_error(h: Harness):
    e = await h.engine(engine="sglang")
    h.members(POOL, (e.host, e.port))
    doc = (await h.scraper(pool("vllm")).scrape_pool(pool("vllm")))[member_id(e)]
    assert doc["status"] == "error" and doc["error"].startswith("no engine metric found")


# --- identity: metrics.port, members leaving, IPv6 ---------------------------------------------------------
async def test_metrics_port_override_scrapes_shared_address_once_and_stores_each_member(h: Harness, log_lines):
    e = await h.engine()
    await e.force(waiting=4, running=1, kv=0.5)
    h.members(POOL, ("127.0.0.1", 8001), ("127.0.0.1", 8002))
    p = pool(port=e.port)
    scraper = h.scraper(p)
    docs = await scraper.scrape_pool(p)
    assert set(docs) == {"127.0.0.1:8001", "127.0.0.1:8002"}
    a, b = docs["127.0.0.1:8001"], docs["127.0.0.1:8002"]
    assert a["shared_with"] == ["127.0.0.1:8002"] and b["shared_with"] == ["127.0.0.1:8001"]
    # One scrape, one result: same instant, same duration.
    assert (a["scraped_at"], a["duration"], a["metrics"]) == (b["scraped_at"], b["duration"], b["metrics"])
    await scraper.scrape_pool(p)
    warnings = [line for line in log_lines if "cannot be told apart" in line]
    assert len(warnings) == 1 and "127.0.0.1:8001, 127.0.0.1:8002" in warnings[0]


async def test_metrics_of_members_that_left_the_pool_are_dropped(h: Harness):
    a, b = await h.engine(), await h.engine()
    h.members(POOL, (a.host, a.port), (b.host, b.port))
    scraper = h.scraper(pool())
    await scraper.scrape_pool(pool())
    h.members(POOL, (a.host, a.port))
    await scraper.scrape_pool(pool())
    assert set(h.store.metrics(POOL)) == {member_id(a)}


def test_metrics_url_brackets_ipv6_strips_route_domains_and_honours_port_and_path():
    m = MetricsConfig()
    assert metrics_url(m, Member("2001:db8::1", 80)) == "http://[2001:db8::1]:80/metrics"
    assert metrics_url(m, Member("fe80:0:0:0:0:0:0:12%3", 8000)) == "http://[fe80::12]:8000/metrics"
    assert metrics_url(m, Member("10.0.0.1%2", 8000)) == "http://10.0.0.1:8000/metrics"
    assert metrics_url(m, Member("vllm-1.example.com", 8000)) == "http://vllm-1.example.com:8000/metrics"
    custom = MetricsConfig(schema="https", port=9100, path="/prom/metrics")
    assert metrics_url(custom, Member("2001:db8::1", 80)) == "https://[2001:db8::1]:9100/prom/metrics"


def test_plan_groups_members_by_url_only_when_the_url_is_the_same():
    members = [Member("10.0.0.1", 8001), Member("10.0.0.1%2", 8002), Member("10.0.0.2", 8001)]
    assert [t.member_ids for t in plan_targets(MetricsConfig(), members)] == [
        ("10.0.0.1:8001",),
        ("10.0.0.1%2:8002",),
        ("10.0.0.2:8001",),
    ]
    shared = plan_targets(MetricsConfig(port=9000), members)
    assert [t.member_ids for t in shared] == [("10.0.0.1:8001", "10.0.0.1%2:8002"), ("10.0.0.2:8001",)]


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
async def test_an_ipv6_member_is_scraped_over_ipv6(h: Harness):
    e = await h.engine(host="::1")
    await e.force(waiting=2, running=1, kv=0.1)
    h.members(POOL, ("::1", e.port))
    doc = (await h.scraper(pool()).scrape_pool(pool()))[f"::1:{e.port}"]
    assert doc["status"] == "ok" and doc["metrics"]["waiting_queue"] == 2.0
