"""Fixtures of the collectors tests: the BIG-IP emulator over HTTPS on 127.0.0.1, F5 settings pointing at it,
a manual clock, and a loguru capture for checking what the collectors log (and that no secret is in it)."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from loguru import logger

from llmsched.emulators.f5 import bound_port, serve_f5
from llmsched.emulators.f5_state import F5State
from llmsched.shared.config_model import F5Config
from llmsched.shared.secrets import Secret

F5_PASSWORD = "s3cret-Pa55word"
BIGIP = {
    "users": [{"username": "admin", "password": F5_PASSWORD}],
    "login_providers": ["tmos", "corp-ldap"],
    "partitions": ["TEST2"],
    "pools": [
        {
            "name": "vllm_pool",
            "members": [
                {"address": "10.0.0.1", "port": 8000},
                {"address": "10.0.0.2", "port": 8000, "ratio": 2},
                {"address": "10.0.0.3", "port": 8000, "priorityGroup": 10},
            ],
        },
        {
            "name": "v6_pool",
            "partition": "TEST2",
            "members": [
                {"name": "2001:db8::1.80"},
                {"address": "2.3.2.2%30", "port": 8080},
                {"fqdn": "app.example.com", "port": 8000, "resolved": ["10.1.2.3"]},
                {"name": "web01:443", "address": "10.156.153.10"},
            ],
        },
        {"name": "pool", "sub_path": "myapp.app", "members": [{"address": "10.9.9.9", "port": 80}]},
        {"name": "empty_pool", "members": []},
    ],
}


@dataclass
class BigIP:
    """A running BIG-IP emulator: its port, certificate, state, and its admin API (over real HTTPS)."""

    port: int
    cert: str
    state: F5State
    session: aiohttp.ClientSession
    runner: object

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def f5_config(self, **overrides: object) -> F5Config:
        cfg = F5Config(
            host="127.0.0.1",
            port=self.port,
            username="admin",
            password_env="F5_PASSWORD",
            password=Secret(F5_PASSWORD),
            ca_bundle=self.cert,
            timeout=3.0,
        )
        return replace(cfg, **overrides)

    async def admin(self, method: str, path: str, body: object = None) -> object:
        async with self.session.request(method, f"{self.base}/_emulator{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def set_member(self, pool: str, member: str, state: str) -> None:
        await self.admin("PATCH", f"/pools/{pool}/members/{member}", {"state": state})

    def token_values(self) -> set[str]:
        return set(self.state.tokens)

    async def stop(self) -> None:
        await self.runner.cleanup()  # type: ignore[attr-defined]


@pytest.fixture()
async def bigip(tmp_path: Path) -> AsyncIterator[BigIP]:
    """The BIG-IP emulator over HTTPS with a fresh self-signed certificate, trusted here as a private CA."""
    state = F5State.from_dict(BIGIP)
    runner, served_cert = await serve_f5("127.0.0.1", 0, state, tls=True)
    assert served_cert is not None
    # The emulator deletes its certificate when it stops; a copy keeps the CA file valid for "BIG-IP down" tests.
    cert = str(tmp_path / "bigip-ca.pem")
    shutil.copyfile(served_cert, cert)
    ctx = ssl.create_default_context(cafile=cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        yield BigIP(bound_port(runner), cert, state, session, runner)
    await runner.cleanup()


class ManualClock:
    """A clock that moves only when told to (token expiry and document ages without sleeping)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def logs() -> Iterator[list[str]]:
    """Every loguru line (DEBUG and up, with exception text) emitted during the test."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message}\n{exception}")
    yield lines
    logger.remove(sink)
