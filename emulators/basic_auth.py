"""HTTP Basic credentials parsing shared by the emulators (aiohttp 3.14 deprecates `BasicAuth.decode`)."""

from __future__ import annotations

import base64
import binascii


def decode_basic(header: str) -> tuple[str, str] | None:
    """`Basic base64(user:pass)` -> (user, pass); None when the header is not well-formed Basic auth."""
    scheme, _, payload = header.strip().partition(" ")
    if scheme.lower() != "basic" or not payload:
        return None
    try:
        # latin-1 is what HTTP clients (and aiohttp) use for Basic credentials by default.
        decoded = base64.b64decode(payload.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
