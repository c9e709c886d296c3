"""The two error-body families of iControl REST (restjavad/framework errors and LTM errors), as aiohttp responses.

* restjavad/framework errors (auth, URI routing): `code`, `message`, `referer`, `restOperationId`, `kind`.
* mcpd/tm errors (configuration objects): `code`, `message`, `errorStack`, `apiError`.

The HTTP status always equals the body's `code`, because some clients (f5-ansible) trust the body's code.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from llmsched.emulators.f5_state import F5State

MCPD_LOST = "The connection to mcpd has been lost, try again."
GUI_RESTARTING_HTML = (
    "<html><head><title>Configuration Utility restarting...</title></head>"
    "<body><p>Configuration Utility restarting...</p></body></html>"
)


_compact = functools.partial(json.dumps, separators=(",", ":"))


def json_response(body: Any, status: int = 200, reason: str | None = None) -> web.Response:
    """JSON the way restjavad writes it: compact, no spaces after separators."""
    return web.json_response(body, status=status, reason=reason, dumps=_compact)


def client_ip(request: web.Request) -> str:
    return request.remote or "127.0.0.1"


def restjavad_error(
    state: F5State, request: web.Request, code: int, message: str, reason: str | None = None
) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "referer": client_ip(request),
        "restOperationId": state.next_op_id(),
        "kind": ":resterrorresponse",
    }
    return json_response(body, status=code, reason=reason)


def no_credentials(state: F5State, request: web.Request) -> web.Response:
    ip = client_ip(request)
    # restjavad listens on localhost:8100 behind httpd; its message names that internal URI.
    message = (
        f"Authorization failed: no user authentication header or token detected. "
        f"Uri:http://localhost:8100{request.path} Referrer:{ip} Sender:{ip}"
    )
    return restjavad_error(state, request, 401, message)


def mcpd_error(code: int, message: str, api_error: int) -> web.Response:
    return json_response({"code": code, "message": message, "errorStack": [], "apiError": api_error}, status=code)


def pool_not_found(full_path: str) -> web.Response:
    return mcpd_error(404, f"01020036:3: The requested Pool ({full_path}) was not found.", 3)


def member_not_found(pool_path: str, member_ref: str) -> web.Response:
    """The member is written "pool node port", with spaces: `(/Common/p1 /Common/10.0.0.1 80)`."""
    from llmsched.emulators.f5_members import split_member_name

    path = member_ref.replace("~", "/")
    folder, _, name = path.rpartition("/")
    try:
        host, port = split_member_name(name)
        node = f"{folder or '/Common'}/{host} {port}"
    except ValueError:
        node = path
    return mcpd_error(404, f"01020036:3: The requested Pool Member ({pool_path} {node}) was not found.", 3)


def folder_not_found(folder: str) -> web.Response:
    return mcpd_error(400, f"The requested folder (/{folder}) was not found.", 26214401)


def bad_request(message: str) -> web.Response:
    return mcpd_error(400, message, 26214401)


def injected_failure(state: F5State, request: web.Request, status: int) -> web.Response:
    """The realistic body for each fault status the admin API can inject."""
    if status == 503:
        return web.Response(status=503, text=GUI_RESTARTING_HTML, content_type="text/html")
    if status == 404:
        return restjavad_error(
            state, request, 404, f"Public URI path not registered: {request.path.removeprefix('/mgmt')}"
        )
    if status == 500:
        return mcpd_error(500, MCPD_LOST, 32768001)
    return restjavad_error(state, request, status, "Injected failure.")
