"""An inference-engine emulator (aiohttp) speaking vLLM's or SGLang's `/metrics` and the OpenAI API.

`GET /metrics` serves a vLLM V1 exposition (KV gauge old/both/new, DP=N) or an SGLang one (docs/scraper.md;
`sglang:` or `sglang_` prefix, per-TP duplicates) with Content-Type `text/plain; version=0.0.4; charset=utf-8`,
computed from a continuous-batching model that real requests to `/v1/completions` and `/v1/chat/completions`
load. `/_emulator/...` (see `llmsched.emulators.engine_admin`) pins values and injects `/metrics` failures.

Python API: `build_engine_app(spec)` and `await serve_engine(host, port, spec) -> runner`.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from llmsched.emulators.basic_auth import decode_basic
from llmsched.emulators.engine_admin import add_admin_routes
from llmsched.emulators.engine_metrics import metrics_text, quirky
from llmsched.emulators.engine_openai import STATE_KEY, add_openai_routes
from llmsched.emulators.engine_state import EngineSpec, EngineState
from llmsched.emulators.expo import CONTENT_TYPE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GARBAGE = '<html><body>502 Bad Gateway</body></html>\n{{ not prometheus }}\nvllm:num_requests_waiting{engine="0" 12\n'


def _authorized(spec: EngineSpec, header: str) -> bool:
    if spec.api_key and hmac.compare_digest(header.encode(), f"Bearer {spec.api_key}".encode()):
        return True
    creds = decode_basic(header) if spec.basic_auth else None
    if spec.basic_auth and creds is not None:
        user, password = spec.basic_auth
        return hmac.compare_digest(creds[0].encode(), user.encode()) and hmac.compare_digest(
            creds[1].encode(), password.encode()
        )
    return False


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Optional auth on /metrics and /v1 (a Bearer API key, or Basic), answered like vLLM's --api-key check."""
    spec = request.app[STATE_KEY].spec
    protected = request.path == "/metrics" or request.path.startswith("/v1/")
    if (
        protected
        and (spec.api_key or spec.basic_auth)
        and not _authorized(spec, request.headers.get("Authorization", ""))
    ):
        return web.json_response({"error": "Unauthorized"}, status=401)
    return await handler(request)


async def metrics(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    mode = state.metrics_mode
    if mode == "error":
        return web.Response(status=state.error_status, text="Internal Server Error")
    if mode == "hang":
        # Hold the scrape open until the mode changes or the server stops; the client's timeout fires first.
        while state.metrics_mode == "hang" and not state.release.is_set():
            try:
                await asyncio.wait_for(state.release.wait(), timeout=0.1)
            except TimeoutError:
                pass
        return web.Response(status=503, text="released")
    if mode == "garbage":
        return web.Response(text=GARBAGE, headers={"Content-Type": CONTENT_TYPE})
    text = metrics_text(state, partial=(mode == "partial"))
    if mode == "quirky":
        text = quirky(text)
    if mode == "truncated":  # a body cut mid-line, as when a proxy or the process dies while writing
        text = text[: len(text) * 3 // 5].rstrip("\n")[:-3]
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


def build_engine_app(spec: EngineSpec) -> web.Application:
    """The emulator as an aiohttp application; its engine loops run while the app is running."""
    app = web.Application(middlewares=[auth_middleware])
    # asyncio.Event/Queue bind to a loop on first use (Python >= 3.10), so building the state here is safe.
    state = EngineState(spec)
    app[STATE_KEY] = state

    async def engine_loops(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(core.run(), name=f"engine-core-{core.index}") for core in state.cores]
        yield
        state.release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(engine_loops)

    async def release_hangs(app: web.Application) -> None:
        state.release.set()  # on_shutdown runs before in-flight handlers are awaited

    app.on_shutdown.append(release_hangs)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    add_openai_routes(app)
    add_admin_routes(app)
    return app


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


async def serve_engine(host: str, port: int, spec: EngineSpec) -> web.AppRunner:
    """Start the emulator on host:port (0 = any free port, see `bound_port`); stop with `runner.cleanup()`."""
    runner = web.AppRunner(build_engine_app(spec), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()  # stops the engine loops again
        raise
    return runner
