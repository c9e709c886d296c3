"""A running `llmsched up` stack (emulated BIG-IP and engines on 127.0.0.1) exposes every metric the operator's guide
promises: the API's /metrics and each collector's and scorer's own endpoint, scraped over HTTP and parsed with
prometheus_client's parser."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmsched.cli.up import Child, assign_metrics_ports, bind_metrics_host
from llmsched.emulators.engine import bound_port as engine_port
from llmsched.emulators.engine import serve_engine
from llmsched.emulators.engine_state import EngineSpec
from llmsched.emulators.f5 import bound_port, serve_f5
from llmsched.emulators.f5_state import F5State
from llmsched.shared.config_model import Config, GlobalConfig, TelemetryConfig
from llmsched.shared.telemetry import serve

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
POOL = "llm_pool"


def promised_names() -> set[str]:
    """Every metric name in the metrics tables of docs/operations.md."""
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(llmsched_[a-z_]+)`", section, re.M))


async def text_of(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        assert resp.status == 200, url
        return await resp.text()


async def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := await check():
                return value
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def test_a_running_stack_exposes_every_metric_the_guide_promises(tmp_path: Path) -> None:
    engines = [await serve_engine("127.0.0.1", 0, EngineSpec(engine="vllm", kv_name=kv)) for kv in ("new", "old")]
    members = [f"127.0.0.1:{engine_port(r)}" for r in engines]
    state = F5State.from_dict(
        {"users": {"admin": "f5-pw"}, "pools": [{"name": POOL, "members": [{"name": m} for m in members]}]}
    )
    f5_runner, cert = await serve_f5("127.0.0.1", 0, state, tls=True)
    api_port = free_port()
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"interval": 1, "api_host": "127.0.0.1", "api_port": api_port},
                "f5": {
                    "host": "127.0.0.1",
                    "port": bound_port(f5_runner),
                    "password_env": "TEST_F5_PW",
                    "ca_bundle": cert,
                },
                "scheduler": {"pool_fetch_interval": 1, "metrics_fetch_interval": 500},
                "telemetry": {"host": "127.0.0.1"},
                "pools": [{"name": POOL, "engine_type": "vllm", "metrics": {"timeout": 1}}],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(TEST_F5_PW="f5-pw", PYTHONPATH=str(REPO))
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmsched.cli.main",
                "up",
                "--config",
                str(config),
                "--workers",
                "2",
                "--metrics-ports",
                "free",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{api_port}"
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    try:

        async def metrics_line():
            return re.search(r"metrics (poller \S+), (scraper \S+), (scorer \S+), (api \S+);", log.read_text())

        line = await wait_for("the metrics line", metrics_line, 30)
        endpoints = dict(part.split(" ") for part in line.groups())
        assert endpoints["api"] == f"{api}/metrics"

        async def scored() -> bool:
            async with session.get(f"{api}/pools/{POOL}/Common/status") as resp:
                return resp.status == 200 and all(m["eligible"] for m in (await resp.json())["members"])

        await wait_for("every member scored", scored, 30)
        body = {"pool_name": POOL, "partition": "Common", "members": members}
        picked = 0
        for _ in range(300):  # a loaded machine may answer some `none` (the API's 10 ms Redis budget)
            async with session.post(f"{api}/scheduler/select", json=body) as resp:
                answer = await resp.text()
            assert answer in members or answer == "none", answer
            picked += answer in members
            if picked >= 5:
                break
        assert picked >= 5
        async with session.post(f"{api}/scheduler/select", json={"pool_name": ""}) as resp:
            assert resp.status == 422
        await asyncio.sleep(0.3)
        found: dict[str, set[str]] = {}
        for process, url in endpoints.items():
            fams = list(text_string_to_metric_families(await text_of(session, url)))
            found[process] = {f.name for f in fams} | {s.name for f in fams for s in f.samples}
        union = set().union(*found.values())
        promised = promised_names()
        assert len(promised) >= 30, promised
        missing = {n for n in promised if n not in union and n.removesuffix("_total") not in union}
        assert not missing, f"promised by docs/operations.md but not exported: {sorted(missing)}"
        assert {"llmsched_decisions_total", "llmsched_member_expected_share"} <= found["api"]
        assert "llmsched_bigip_logins_total" in found["poller"] and "llmsched_scrapes_total" in found["scraper"]
        assert "llmsched_scoring_queue_depth" in found["scorer"]
    finally:
        await session.close()
        up.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(up.wait, 10)  # in a thread: the emulators on this loop keep answering
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        await f5_runner.cleanup()
        for runner in engines:
            await runner.cleanup()
    assert up.returncode == 0, log.read_text()[-3000:]


def test_up_gives_every_collector_and_scorer_a_distinct_metrics_port() -> None:
    argv = [sys.executable, "-m", "llmsched.cli.main"]
    children = [
        Child("poller", argv + ["poller"]),
        Child("scraper", argv + ["scraper"]),
        Child("scorer-1", argv + ["scorer"]),
        Child("scorer-2", argv + ["scorer"]),
        Child("scorer-3", argv + ["scorer"]),
        Child("api", argv + ["api"]),
    ]
    ports = assign_metrics_ports(
        children, TelemetryConfig(poller_port=9101, scraper_port=9104, scorer_port=9103), free=False
    )
    assert ports == {"poller": 9101, "scraper": 9104, "scorer-1": 9103, "scorer-2": 9105, "scorer-3": 9106}
    assert children[2].extra_env == {"LLMSCHED_METRICS_PORT": "9103"} and children[-1].extra_env == {}
    off = assign_metrics_ports(children[:3], TelemetryConfig(poller_port=0, scraper_port=0, scorer_port=0), False)
    assert set(off.values()) == {0}
    free = assign_metrics_ports(children, TelemetryConfig(), free=True)
    assert len(set(free.values())) == 5 and 0 not in free.values()


def test_up_binds_the_metrics_endpoints_to_the_apis_host_unless_telemetry_host_names_one() -> None:
    argv = [sys.executable, "-m", "llmsched.cli.main"]
    children = [Child("scraper", argv + ["scraper"]), Child("api", argv + ["api"])]
    assign_metrics_ports(children, TelemetryConfig(), free=True)
    local = Config(global_=GlobalConfig(api_host="127.0.0.1"))  # telemetry.host left at its wildcard default
    assert bind_metrics_host(children, local) == "127.0.0.1"
    assert children[0].extra_env["LLMSCHED_METRICS_HOST"] == "127.0.0.1"
    assert "LLMSCHED_METRICS_HOST" not in children[1].extra_env  # the API serves /metrics on its own port
    named = Config(global_=GlobalConfig(api_host="127.0.0.1"), telemetry=TelemetryConfig(host="::1"))
    assert bind_metrics_host(children, named) == "::1"


def test_a_metrics_endpoint_listens_where_llmsched_metrics_host_says() -> None:
    port = free_port()
    env = {"LLMSCHED_METRICS_PORT": str(port), "LLMSCHED_METRICS_HOST": "127.0.0.1"}
    server = serve("scraper", TelemetryConfig(host="0.0.0.0"), env=env)
    assert server is not None
    try:
        assert server.server_address[:2] == ("127.0.0.1", port)
    finally:
        server.shutdown()
        server.server_close()
