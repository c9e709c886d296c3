"""Everything a running llmsched wrote or answered, gathered for a grep: logs, every Redis key and value (rq's
compressed job payloads unpacked), every status/health/metrics/what-if response, the processes' command lines.

`leaks(secrets, places)` lists each (place, secret form) where a secret shows up, in any of the forms it could be
written in: as is, base64 (a Basic header), or URL-encoded.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from urllib.parse import quote

import redis

from tests.faults.harness import cmdline, http
from tests.faults.stack import PARTITION, Stack
from tests.helpers import descendants


def redis_dump(client: redis.Redis) -> dict[str, bytes]:
    """key -> every byte stored under it (all types), without DUMP: plain reads only."""
    out: dict[str, bytes] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            parts = [client.get(key) or b""]
        elif kind == "hash":
            parts = [b for kv in client.hgetall(key).items() for b in kv]
        elif kind == "list":
            parts = client.lrange(key, 0, -1)
        elif kind == "set":
            parts = list(client.smembers(key))
        elif kind == "zset":
            parts = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            parts = [b for _id, fields in client.xrange(key) for kv in fields.items() for b in kv]
        else:
            parts = []
        unpacked = []
        for part in parts:
            try:  # rq stores job data zlib-compressed
                unpacked.append(zlib.decompress(part))
            except zlib.error:
                pass
        out[key.decode(errors="replace")] = b"\n".join([key, *parts, *unpacked])
    return out


def api_responses(stack: Stack) -> dict[str, bytes]:
    """Every read-only answer an operator or a monitor can get, plus what-if and error answers."""
    gets = ["/pools/status", "/health", "/readyz", "/livez", "/api_key_health", "/metrics", "/ui", "/ui/data.json"]
    for pool in stack.pools:
        gets += [f"/pools/{pool}/{PARTITION}/status", f"/pools/{pool}/{PARTITION}/status?simple"]
    out = {f"GET {path}": http("GET", stack.api + path).body for path in gets}
    for pool in stack.pools:
        body = {"pool_name": pool, "partition": PARTITION, "members": stack.members}
        for what in ("simulate", "analyze"):
            path = f"/pools/{pool}/{PARTITION}/{what}?iterations=50"
            out[f"POST {path}"] = http("POST", stack.api + path, body).body
        out[f"POST select {pool}"] = stack.select(pool=pool).body
    out["POST select (bad body)"] = http(
        "POST", stack.api + "/scheduler/select", raw=b"{oops", headers={"Content-Type": "application/json"}
    ).body
    return out


def command_lines(root_pid: int) -> dict[str, bytes]:
    return {f"cmdline of pid {pid}": cmdline(pid).encode() for pid in descendants(root_pid) | {root_pid}}


def forms(secret: str) -> dict[str, bytes]:
    raw = secret.encode()
    return {"as is": raw, "base64": base64.b64encode(raw), "url-encoded": quote(secret, safe="").encode()}


def leaks(secrets: dict[str, str], places: dict[str, bytes]) -> list[str]:
    found = []
    for name, secret in secrets.items():
        for form, needle in forms(secret).items():
            found += [f"{name} ({form}) in {place}" for place, data in places.items() if needle in data]
    return found


def basic_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The user:password strings a Basic header carries (base64-encoded on the wire)."""
    return {f"basic pair of {user}": f"{user}:{password}" for user, password in pairs}
