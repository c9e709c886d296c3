"""Typed iControl REST failures: the poller decides what to do from the class and the status, never from text.

BIG-IP answers errors in two JSON families: restjavad/framework errors
(`kind: ":resterrorresponse"`, no `apiError`) and mcpd/tm errors (with `apiError`). A 404 from mcpd means the
object really does not exist; a 404 from restjavad ("URI path not registered") means the REST service is
restarting. `classify` tells them apart by the body's structure, so a host name or message that happens to contain
"404" or "503" changes nothing (the original matched substrings of messages, spec 11 item 16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmsched.shared.errors import F5Error

MAX_MESSAGE = 300  # BIG-IP messages can embed whole URIs; keep log lines and Redis docs short


class F5HTTPError(F5Error):
    """BIG-IP answered with an HTTP error status; `status` is that status, `message` BIG-IP's own text."""

    def __init__(self, what: str, status: int, message: str = "", api_error: int | None = None) -> None:
        self.what = what
        self.status = status
        self.message = message[:MAX_MESSAGE]
        self.api_error = api_error
        detail = f": {self.message}" if self.message else ""
        super().__init__(f"{what}: HTTP {status}{detail}")


class F5AuthError(F5HTTPError):
    """Credentials were refused (login 401/403, Basic 401, or a 401 again right after a fresh login)."""


class F5NotFound(F5HTTPError):
    """mcpd says the object (a pool, a folder) does not exist on this BIG-IP."""


class F5Unavailable(F5HTTPError):
    """BIG-IP is up but cannot serve the request now: 5xx, or restjavad still registering its URIs."""


class F5Unreachable(F5Error):
    """No HTTP answer at all: connection refused, DNS, TLS failure or timeout. `status` is None."""

    status: int | None = None

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason[:MAX_MESSAGE]
        super().__init__(f"{what}: {self.reason}")


class F5TLSError(F5Unreachable):
    """The TLS handshake failed, typically because the certificate is not trusted (set f5.ca_bundle)."""


class F5ProtocolError(F5HTTPError):
    """A 2xx answer whose body is not what iControl REST sends (not JSON, or missing a required field)."""


def error_fields(body: Any) -> tuple[str, int | None, bool]:
    """(message, apiError, is_mcpd) from an error body of either family; ("", None, False) if it is neither."""
    if not isinstance(body, dict):
        return "", None, False
    message = body.get("message")
    api_error = body.get("apiError")
    return (
        str(message) if message is not None else "",
        api_error if isinstance(api_error, int) else None,
        "apiError" in body or "errorStack" in body,
    )


def classify(
    what: str, status: int, body: Any, reason: str = "", clean: Callable[[str], str] = lambda text: text
) -> F5HTTPError:
    """The exception for an error answer, chosen by status and body family; `clean` scrubs BIG-IP's message."""
    message, api_error, is_mcpd = error_fields(body)
    if not message and body is None:
        message = reason  # an HTML 503 ("Configuration Utility restarting...") has no JSON message
    message = clean(message)
    if status in (401, 403):
        return F5AuthError(what, status, message, api_error)
    if status == 404 and is_mcpd:
        return F5NotFound(what, status, message, api_error)
    # A missing partition is a 400 whose mcpd message says so ("The requested folder (/X) was not found."); its
    # apiError is shared with other invalid requests, so it stays a plain F5HTTPError carrying that message.
    if status == 404 or status >= 500 or status in (408, 429):
        return F5Unavailable(what, status, message, api_error)
    return F5HTTPError(what, status, message, api_error)
