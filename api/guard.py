"""An optional token in front of every endpoint that is not a decision or a health check, and the browser
hardening headers of every response Flask answers.

`simulate` and `analyze` cost CPU and the status pages reveal the pool's layout, so a deployment can require the
admin token for them (`global.admin_token_env` names the environment variable that holds it; `llmsched api` hands
it to the workers as LLMSCHED_ADMIN_TOKEN). BIG-IP's paths stay open: the decision (answered before Flask by
llmsched.api.select), the health checks its monitor uses, and /metrics, which Prometheus scrapes from the same
network. So do the status page's static files (ui.js, ui.css): they are the same for everyone and hold nothing
secret, and a browser fetches them without any header of ours.

A client sends the token as `Authorization: Bearer <token>`. A browser opens `/ui?token=<token>` once: the
answer is a redirect to `/ui` that sets an HttpOnly, SameSite=Strict cookie, so the token leaves the address bar
(and with it the history, the Referer and any access log line) and the page's own requests carry the cookie. The
cookie holds an HMAC of the token, not the token. A token in the query is accepted nowhere else.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from llmsched.api.responses import json_response

OPEN_PATHS = frozenset({"/scheduler/select", "/health", "/readyz", "/livez", "/metrics"})
OPEN_PREFIXES = ("/ui/static/",)
LOGIN_PATHS = frozenset({"/ui", "/ui/"})
COOKIE = "llmsched_admin"
COOKIE_MAX_AGE_S = 12 * 3600

# The status page loads only its own script, style sheet and JSON; nothing may frame any of our pages.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"llmsched status page cookie", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def check_admin_token(token: str) -> BaseResponse | None:
    """A Flask before_request hook: None lets the request through, a response (401, or the cookie redirect) ends it."""
    path = request.path
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and _same(header[7:], token):
        return None
    if _same(request.cookies.get(COOKIE, ""), cookie_value(token)):
        return None
    if path in LOGIN_PATHS and _same(request.args.get("token", ""), token):
        response = redirect("/ui", code=303)
        response.set_cookie(
            COOKIE,
            cookie_value(token),
            max_age=COOKIE_MAX_AGE_S,
            path="/",
            secure=request.is_secure,
            httponly=True,
            samesite="Strict",
        )
        return response
    response = json_response(
        {
            "detail": "this endpoint needs the admin token: Authorization: Bearer <token> "
            "(a browser opens /ui?token=<token> once)"
        },
        401,
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="llmsched"'
    return response


def security_headers(response: Response) -> Response:
    """A Flask after_request hook: no MIME sniffing, no framing, a CSP, and no Referer leaving the page."""
    headers = response.headers
    page = (response.mimetype or "").startswith("text/html")
    headers.setdefault("Content-Security-Policy", PAGE_POLICY if page else DATA_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    return response
