"""Fixtures that run the emulators on 127.0.0.1 (free ports) for the duration of one test."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest

from llmsched.emulators.engine import bound_port as engine_port
from llmsched.emulators.engine import serve_engine
from llmsched.emulators.engine_state import EngineSpec
from llmsched.emulators.f5 import bound_port, serve_f5
from llmsched.emulators.f5_state import F5State

F5_CONFIG = {
    "users": [
        {"username": "admin", "password": "s3cret"},
        {"username": "svc", "password": "svc-pw"},
        {"username": "ldapuser", "password": "remote-pw", "local": False},
    ],
    "partitions": ["TEST2"],
    "pools": [
        {
            "name": "vllm_pool",
            "members": [
                {"address": "10.0.0.1", "port": 8000},
                {"address": "10.0.0.2", "port": 8000, "ratio": 2, "state": "disabled"},
                {
                    "address": "10.0.0.3",
                    "port": 8000,
                    "priorityGroup": 10,
                    "state": "forced_offline",
                    "monitor": "min 1 of { /Common/http /Common/tcp }",
                },
            ],
        },
        {
            "name": "v6_pool",
            "partition": "TEST2",
            "members": [
                {"name": "2001:db8::1.80"},
                {"address": "2.3.2.2%30", "port": 8080},
                {"fqdn": "app.example.com", "port": 8000, "resolved": ["10.1.2.3"]},
            ],
        },
        {"name": "pool", "sub_path": "myapp.app", "members": [{"address": "10.9.9.9", "port": 80}]},
        {"name": "empty_pool", "members": []},
    ],
}


@dataclass
class F5Handle:
    base: str
    state: F5State
    cert_path: str | None
    session: aiohttp.ClientSession

    async def login(self, username: str = "admin", password: str = "s3cret") -> str:
        async with self.session.post(
            f"{self.base}/mgmt/shared/authn/login",
            json={"username": username, "password": password, "loginProviderName": "tmos"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["token"]["token"])

    async def admin(self, method: str, path: str, body: object = None) -> dict:
        async with self.session.request(method, f"{self.base}/_emulator{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def _start_f5(tls: bool) -> AsyncIterator[F5Handle]:
    state = F5State.from_dict(F5_CONFIG)
    runner, cert = await serve_f5("127.0.0.1", 0, state, tls=tls)
    scheme = "https" if tls else "http"
    ctx: ssl.SSLContext | bool = ssl.create_default_context(cafile=cert) if cert else False
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        yield F5Handle(f"{scheme}://127.0.0.1:{bound_port(runner)}", state, cert, session)
    await runner.cleanup()


@pytest.fixture()
async def f5() -> AsyncIterator[F5Handle]:
    """The BIG-IP emulator over HTTPS; the client verifies the generated certificate as a private CA."""
    async for handle in _start_f5(tls=True):
        yield handle


@pytest.fixture()
async def f5_http() -> AsyncIterator[F5Handle]:
    async for handle in _start_f5(tls=False):
        yield handle


EngineFactory = Callable[..., Awaitable[str]]


@pytest.fixture()
async def engine() -> AsyncIterator[EngineFactory]:
    """`await engine(**EngineSpec kwargs)` starts an engine emulator and returns its base URL."""
    runners = []

    async def start(**kwargs: object) -> str:
        runner = await serve_engine("127.0.0.1", 0, EngineSpec(**kwargs))  # type: ignore[arg-type]
        runners.append(runner)
        return f"http://127.0.0.1:{engine_port(runner)}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture()
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
