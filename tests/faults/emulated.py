"""The BIG-IP and engine emulators as breakable parts of a fault scenario, served from a background event loop.

* `LoopThread` runs an asyncio loop in a daemon thread. The emulators live there, so a fault test is plain
  synchronous code that may block (time.sleep, a slow HTTP call) without stalling the emulated BIG-IP or engines.
* `BigIP` is the BIG-IP emulator on a fixed port and certificate: stoppable and restartable with the same state,
  counting every /mgmt request it answers and recording every token it ever issued (for the secrets audit).
* `Engine` is one engine emulator on a fixed port: stoppable, restartable, counting its /metrics answers.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llmsched.emulators.engine import build_engine_app
from llmsched.emulators.engine_state import EngineSpec
from llmsched.emulators.f5 import build_f5_app
from llmsched.emulators.f5_state import F5State, Token
from llmsched.emulators.tls import CertFiles, generate_self_signed

from tests.conftest import free_port
from tests.faults.harness import http

POOL = "fault_pool"
PARTITION = "Common"


# --- the emulators' event loop ----------------------------------------------------------------------------------
class LoopThread:
    """An asyncio event loop running in a daemon thread; `run(coro)` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="emulators", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _serve(app: web.Application, port: int, ssl_context: ssl.SSLContext | None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


@dataclass
class RecordingF5State(F5State):
    """The emulator's state, remembering every token it ever issued, even after it was deleted or revoked."""

    issued: list[str] = field(default_factory=list)
    logins: int = 0

    def login(self, username: str, password: str, provider: str | None, address: str) -> Token:
        self.logins += 1
        token = super().login(username, password, provider, address)
        self.issued.append(token.token)
        return token


class BigIP:
    """The BIG-IP emulator on one port and one certificate for the whole test, so it can go away and come back."""

    def __init__(self, loop: LoopThread, pools: dict[str, list[str]], password: str) -> None:
        self.loop = loop
        self.password = password
        self.state = RecordingF5State.from_dict(
            {
                "users": {"admin": password},
                "pools": [{"name": name, "members": [{"name": m} for m in members]} for name, members in pools.items()],
            }
        )
        self.certs: CertFiles = generate_self_signed(prefix="llmsched-faults-f5-")
        self.port = free_port()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.runner: web.AppRunner | None = None

    @property
    def cert(self) -> str:
        return self.certs.cert_path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        async def go() -> web.AppRunner:
            app = build_f5_app(self.state)

            async def count(request: web.Request, _response: web.StreamResponse) -> None:
                self.requests[(request.method, request.path)] += 1

            app.on_response_prepare.append(count)
            return await _serve(app, self.port, self.certs.server_context())

        self.runner = self.loop.run(go())

    def stop(self) -> None:
        if self.runner is not None:
            self.loop.run(self.runner.cleanup())
            self.runner = None

    def close(self) -> None:
        self.stop()
        self.certs.remove()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        reply = http(method, f"{self.base}/_emulator{path}", body, ca=self.cert)
        assert reply.status == 200, reply.text
        return reply.json()

    def member_gets(self, pool: str = POOL) -> int:
        """iControl GETs of the pool's member collection answered so far (the poller's reads)."""
        counts = list(self.requests.items())  # one copy under the GIL: the emulators' thread adds keys
        return sum(n for (method, path), n in counts if method == "GET" and path.endswith(f"~{pool}/members"))

    def active_tokens(self) -> int:
        return self.admin("GET", "/state")["active_tokens"]


class Engine:
    """One engine emulator on a fixed port (restartable there), counting the /metrics requests it answered."""

    def __init__(self, loop: LoopThread, spec: EngineSpec | None = None) -> None:
        self.loop = loop
        self.spec = spec or EngineSpec(engine="vllm")
        self.port = free_port()
        self.metrics_gets = 0
        self.runner: web.AppRunner | None = None

    @property
    def member(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        async def go() -> web.AppRunner:
            app = build_engine_app(self.spec)

            async def count(request: web.Request, _response: web.StreamResponse) -> None:
                if request.path == "/metrics":
                    self.metrics_gets += 1

            app.on_response_prepare.append(count)
            return await _serve(app, self.port, None)

        self.runner = self.loop.run(go())

    def stop(self) -> None:
        if self.runner is not None:
            self.loop.run(self.runner.cleanup())
            self.runner = None

    def admin(self, path: str, body: Any) -> Any:
        reply = http("POST", f"http://{self.member}/_emulator{path}", body)  # never authenticated
        assert reply.status == 200, reply.text
        return reply.json()

    def mode(self, mode: str, **extra: Any) -> None:
        self.admin("/mode", {"mode": mode, **extra})
