"""What both emulators' admin APIs (`/_emulator/`) share: JSON errors and JSON-object request bodies."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def admin_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def admin_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} without a body); 400 when the body is not a JSON object."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return data
