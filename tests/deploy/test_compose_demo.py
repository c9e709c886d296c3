"""The compose `demo` profile is wired consistently: scheduler config -> emulated BIG-IP -> engine services.

The emulated BIG-IP is started exactly as its compose command describes (but on 127.0.0.1, never another
address) and the members it reports over iControl REST go through the poller's own member parser.
"""

from __future__ import annotations

import dataclasses
import ipaddress

import aiohttp
import pytest

from llmsched.emulators.cli import build_parser as emulator_parser
from llmsched.emulators.cli import engine_spec_from_args, f5_state_from_args
from llmsched.emulators.engine import bound_port as engine_port
from llmsched.emulators.engine import serve_engine
from llmsched.emulators.f5 import bound_port, serve_f5
from llmsched.shared.config import load_config

from tests.deploy.deploy_files import ROOT, load_compose, option

DEMO_CONFIG = ROOT / "config" / "demo-compose.yaml"
PASSWORD = "demo-password"
ENV = {"F5_PASSWORD": PASSWORD}
DEMO = ("f5", "engine1", "engine2", "engine3")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose(ENV)


def emulator_args(service: dict):
    command = service["command"]
    assert command[0] == "emulate"
    return emulator_parser().parse_args(command[1:])


def engine_addresses(compose: dict) -> dict[str, str]:
    """engine service -> "fixed address:port it listens on"."""
    out = {}
    for name in DEMO[1:]:
        svc = compose["services"][name]
        out[name] = f"{svc['networks']['default']['ipv4_address']}:{option(svc['command'], '--port')}"
    return out


def test_demo_services_run_only_in_the_demo_profile(compose):
    for name, svc in compose["services"].items():
        assert svc.get("profiles", []) == (["demo"] if name in DEMO else []), name


def test_demo_config_points_at_the_emulated_bigip_service(compose):
    config = load_config(DEMO_CONFIG, env=ENV)
    f5 = compose["services"]["f5"]
    assert config.f5.host == "f5"
    assert config.f5.port == int(option(f5["command"], "--port"))
    assert config.f5.username == "admin"  # the user --password-env sets on the emulator
    assert config.f5.password_env == option(f5["command"], "--password-env")


def test_emulated_pools_are_the_demo_config_pools_and_hold_exactly_the_engine_services(compose, monkeypatch):
    monkeypatch.setenv("F5_PASSWORD", PASSWORD)
    state = f5_state_from_args(emulator_args(compose["services"]["f5"]))
    config = load_config(DEMO_CONFIG, env=ENV)
    assert {f"/{p.partition}/{p.name}" for p in config.pools} == set(state.pools)
    (pool,) = state.pools.values()
    assert sorted(f"{m.address}:{m.port}" for m in pool.members) == sorted(engine_addresses(compose).values())


def test_engine_addresses_are_in_the_project_subnet_and_outside_the_dynamic_range(compose):
    (ipam,) = compose["networks"]["default"]["ipam"]["config"]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    assert dynamic.subnet_of(subnet)
    addresses = [ipaddress.ip_address(a.rpartition(":")[0]) for a in engine_addresses(compose).values()]
    assert len(set(addresses)) == len(addresses)
    for address in addresses:
        assert address in subnet and address not in dynamic and address not in (subnet[0], subnet[1])


def test_changing_the_network_prefix_moves_subnet_engines_and_bigip_members_together():
    moved = load_compose({**ENV, "LLMSCHED_NET": "10.77.5"})
    assert moved["networks"]["default"]["ipam"]["config"][0]["subnet"] == "10.77.5.0/24"
    members = option(moved["services"]["f5"]["command"], "--pool").partition("=")[2].split(",")
    assert sorted(members) == sorted(engine_addresses(moved).values())
    assert all(m.startswith("10.77.5.") for m in members)


async def test_the_poller_logs_in_to_the_emulated_bigip_and_gets_exactly_the_engine_members(compose, monkeypatch):
    from llmsched.collectors.f5_client import F5Client

    monkeypatch.setenv("F5_PASSWORD", PASSWORD)
    args = emulator_args(compose["services"]["f5"])
    assert not args.no_tls, "the poller always speaks HTTPS to BIG-IP"
    runner, _cert = await serve_f5("127.0.0.1", 0, f5_state_from_args(args), tls=True)
    # The demo config's BIG-IP settings (user, password variable, auth, verify), reached on 127.0.0.1.
    f5 = dataclasses.replace(load_config(DEMO_CONFIG, env=ENV).f5, host="127.0.0.1", port=bound_port(runner))
    client = F5Client(f5)
    try:
        parsed = await client.pool_members("Pool_vllm", "Common")
    finally:
        await client.close()
        await runner.cleanup()
    assert parsed.skipped == []
    assert sorted(m.id for m in parsed.members) == sorted(engine_addresses(compose).values())
    assert all(m.available for m in parsed.members)


@pytest.mark.parametrize("name", DEMO[1:])
async def test_each_demo_engine_command_starts_an_engine_that_answers_its_health_check(compose, name):
    svc = compose["services"][name]
    spec = engine_spec_from_args(emulator_args(svc))
    assert "/health" in " ".join(svc["healthcheck"]["test"])
    runner = await serve_engine("127.0.0.1", 0, spec)
    try:
        base = f"http://127.0.0.1:{engine_port(runner)}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/health") as resp:
                assert resp.status == 200
            async with session.get(base + "/metrics") as resp:
                text = await resp.text()
    finally:
        await runner.cleanup()
    assert "vllm:num_requests_waiting" in text
