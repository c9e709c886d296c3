"""An optional token in front of every endpoint that is not a decision or a health check.

`simulate` and `analyze` cost CPU and the status pages reveal the pool's layout, so a deployment can require
`Authorization: Bearer <token>` for them (`global.admin_token_env` names the environment variable that holds
it; `llmsched api` hands it to the workers as LLMSCHED_ADMIN_TOKEN). BIG-IP's paths stay open: the decision
(answered before Flask by llmsched.api.select), the health checks its monitor uses, and /metrics, which Prometheus
scrapes from the same network. A browser opening /ui may pass `?token=...` instead; the page then sends it as a
header with each refresh.
"""

from __future__ import annotations

import hmac

from flask import request

from llmsched.api.responses import json_response

OPEN_PATHS = frozenset({"/scheduler/select", "/health", "/readyz", "/livez", "/metrics"})


def check_admin_token(token: str):
    """A Flask before_request hook: None lets the request through, a 401 response stops it."""
    if request.path in OPEN_PATHS:
        return None
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else request.args.get("token", "")
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    response = json_response({"detail": "this endpoint needs the admin token: Authorization: Bearer <token>"}, 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="llmsched"'
    return response
