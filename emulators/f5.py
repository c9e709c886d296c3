"""A BIG-IP iControl REST emulator (aiohttp): token login, Basic auth, pool members, and an admin API.

Reproduces the wire formats of iControl REST (docs/poller.md, docs/emulators.md): the login envelope and token
item, PATCH/GET/DELETE of tokens with real expiry, the restjavad 401 shape, the mcpd 404/400 shapes, and
pool-member collections (see `llmsched.emulators.f5_ltm`).
Test hooks live under `/_emulator/` (see `llmsched.emulators.f5_admin`), outside `/mgmt`.

Python API: `build_f5_app(state)` and `await serve_f5(host, port, state, tls=True) -> (runner, cert_path)`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from llmsched.emulators.basic_auth import decode_basic
from llmsched.emulators.f5_admin import add_admin_routes
from llmsched.emulators.f5_errors import client_ip, injected_failure, json_response, no_credentials, restjavad_error
from llmsched.emulators.f5_ltm import STATE_KEY
from llmsched.emulators.f5_ltm import add_routes as add_ltm_routes
from llmsched.emulators.f5_members import LINK_HOST
from llmsched.emulators.f5_state import F5State, LoginError, Token
from llmsched.emulators.tls import CertFiles, generate_self_signed

LOGIN_PATH = "/mgmt/shared/authn/login"
USER_KEY = web.RequestKey("f5_user", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _authenticate(state: F5State, request: web.Request) -> str | web.Response:
    """The user name behind the request's token or Basic credentials, or the 401 a real box would send."""
    token_header = request.headers.get("X-F5-Auth-Token")
    if token_header:
        token = state.valid_token(token_header)
        if token is None:
            return restjavad_error(state, request, 401, "X-F5-Auth-Token does not exist.")
        return token.username
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        creds = decode_basic(auth)
        if creds is not None and state.check_basic(*creds) is not None:
            return creds[0]
        return restjavad_error(state, request, 401, "Authentication failed.", reason="F5 Authorization Required")
    return no_credentials(state, request)


@web.middleware
async def mgmt_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, injected faults and authentication, in the order a client would experience them."""
    state = request.app[STATE_KEY]
    if not request.path.startswith("/mgmt"):
        return await handler(request)
    state.requests[f"{request.method} {request.path}"] += 1
    if state.faults.latency > 0:
        await asyncio.sleep(state.faults.latency)
    if state.faults.fail_next > 0 and request.path.startswith(state.faults.path_prefix):
        state.faults.fail_next -= 1
        return injected_failure(state, request, state.faults.status)
    if request.path != LOGIN_PATH:
        who = _authenticate(state, request)
        if isinstance(who, web.Response):
            return who
        request[USER_KEY] = who
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return restjavad_error(
            state,
            request,
            404,
            f"URI path {request.path} not registered. Please verify URI "
            "is supported and wait for /available suffix to be responsive.",
        )


async def login(request: web.Request) -> web.Response:
    # f5-icontrol-rest also sends a Basic header with this POST; it is ignored, never required.
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        body = None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("username"), str)
        or not isinstance(body.get("password"), str)
    ):
        return restjavad_error(state, request, 401, "Authentication failed.")
    provider = body.get("loginProviderName")
    try:
        token = state.login(body["username"], body["password"], provider, client_ip(request))
    except LoginError as exc:
        return restjavad_error(state, request, exc.status, exc.message)
    provider_id = uuid.uuid5(uuid.NAMESPACE_URL, f"llmsched-emulator/{token.provider}")
    return json_response(
        {
            "username": token.username,
            "loginReference": {
                "link": f"{LINK_HOST}/mgmt/cm/system/authn/providers/{token.provider}/{provider_id}/login"
            },
            "loginProviderName": token.provider,
            "token": token.to_json(),
            "generation": 0,
            "lastUpdateMicros": 0,
        }
    )


def _owned_token(request: web.Request) -> Token | web.Response:
    state = request.app[STATE_KEY]
    name = request.match_info["name"]
    token = state.valid_token(name)
    if token is None:
        return restjavad_error(state, request, 404, f"Token {name} not found.")
    requester = request[USER_KEY]
    if token.username != requester and requester != "admin":
        return restjavad_error(state, request, 400, f"User {requester} cannot access a token of another user.")
    return token


async def get_token(request: web.Request) -> web.Response:
    token = _owned_token(request)
    return token if isinstance(token, web.Response) else json_response(token.to_json())


async def patch_token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    token = _owned_token(request)
    if isinstance(token, web.Response):
        return token
    try:
        body: Any = await request.json()
        timeout = float(body["timeout"])  # "36000" (the lab's string) and 36000 are both accepted
    except (ValueError, KeyError, TypeError):
        return restjavad_error(state, request, 400, "Invalid timeout value; expected a number of seconds.")
    if timeout <= 0:
        return restjavad_error(state, request, 400, "Invalid timeout value; expected a number of seconds.")
    if timeout > state.max_token_timeout:
        limit = int(state.max_token_timeout) if state.max_token_timeout.is_integer() else state.max_token_timeout
        return restjavad_error(state, request, 406, f"Auth-token absolute timeout ({limit} seconds) exceeded")
    state.extend_token(token, timeout)
    return json_response(token.to_json())


async def delete_token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    token = _owned_token(request)
    if isinstance(token, web.Response):
        return token
    state.tokens.pop(token.token, None)
    return json_response(token.to_json())


async def list_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.purge_expired()
    requester = request[USER_KEY]
    items = [t.to_json() for t in state.tokens.values() if requester == "admin" or t.username == requester]
    body: dict[str, Any] = {
        "kind": "shared:authz:tokens:authtokencollectionstate",
        "selfLink": f"{LINK_HOST}/mgmt/shared/authz/tokens",
        "generation": 0,
        "lastUpdateMicros": 0,
    }
    if items:
        body["items"] = items
    return json_response(body)


def build_f5_app(state: F5State) -> web.Application:
    """The emulator as an aiohttp application bound to `state` (its only mutable state)."""
    app = web.Application(middlewares=[mgmt_middleware])
    app[STATE_KEY] = state
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_get("/mgmt/shared/authz/tokens", list_tokens)
    app.router.add_get("/mgmt/shared/authz/tokens/{name}", get_token)
    app.router.add_patch("/mgmt/shared/authz/tokens/{name}", patch_token)
    app.router.add_delete("/mgmt/shared/authz/tokens/{name}", delete_token)
    add_ltm_routes(app)
    add_admin_routes(app)
    return app


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port a started runner listens on (useful after binding port 0)."""
    return int(runner.addresses[0][1])


async def serve_f5(
    host: str, port: int, state: F5State, tls: bool = True, certs: CertFiles | None = None
) -> tuple[web.AppRunner, str | None]:
    """Start the emulator; returns the runner (call `await runner.cleanup()` to stop) and the cert path.

    With `tls=True` a fresh self-signed certificate (also usable as a private CA) is generated unless `certs`
    is given; the temp dir holding it is removed when the runner is cleaned up.
    """
    app = build_f5_app(state)
    ssl_context = None
    if tls:
        if certs is None:
            certs = generate_self_signed(prefix="llmsched-f5-emu-")
            owned = certs

            async def _remove_certs(_: web.Application) -> None:
                owned.remove()

            app.on_cleanup.append(_remove_certs)
        ssl_context = certs.server_context()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()  # also removes the generated certificate
        raise
    return runner, (certs.cert_path if certs else None)
