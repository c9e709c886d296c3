"""The in-process figures of `make bench-api`: one select through the API's WSGI callable (no HTTP, no gunicorn),
its profile, and what 64 prompt fingerprints add to it."""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import time

MEMBERS = [f"10.0.0.{i}:8000" for i in range(1, 9)]
PAYLOAD = '{"pool_name":"bench_pool","partition":"Common","members":[%s]}' % ",".join(f'"{m}"' for m in MEMBERS)


def call_select(app, body: bytes) -> None:
    """One select through the app's WSGI callable, as gunicorn calls it (the body closed after sending)."""
    environ = {
        "PATH_INFO": "/scheduler/select",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
    }
    answer = app.wsgi_app(environ, lambda status, headers: None)
    b"".join(answer)
    answer.close()


def decision_cost(redis_url: str, n: int = 5000) -> str:
    """One decision in-process (WSGI app called directly, no HTTP, no gunicorn): from the worker's in-memory
    routing data, against the old path that read the pool from Redis first (one EVALSHA round trip)."""
    from loguru import logger

    from llmsched.api.app import create_app
    from llmsched.api.select import answer_select
    from llmsched.shared.routing.decide import decide
    from llmsched.shared.store import Store, connect

    logger.remove()  # as in production at INFO: per-decision lines are DEBUG
    store = Store(connect(redis_url, socket_timeout=1.0))
    app = create_app(store)
    body = PAYLOAD.encode()

    def via_wsgi() -> None:
        call_select(app, body)

    state = app.extensions["llmsched.routing"]
    rng = random.Random(1)

    def from_memory() -> None:
        answer_select(body, state, rng)

    def from_redis() -> None:  # the old hot path: one Redis read per decision, then the same pure decision
        config, snapshot, counts = store.decision_inputs("bench_pool:Common")
        decide(config, snapshot, MEMBERS, time.time(), rng, counts)

    def per_call_us(fn) -> float:
        for _ in range(500):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    lines = [
        f"in-process, per decision: whole select through WSGI {per_call_us(via_wsgi):.0f} us; "
        f"decision from memory {per_call_us(from_memory):.0f} us; "
        f"old path (Redis read + decision) {per_call_us(from_redis):.0f} us"
    ]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        via_wsgi()
    prof.disable()
    state.stop()
    groups: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(prof).stats.items():
        groups[_group(filename, func)] = groups.get(_group(filename, func), 0.0) + tottime
    total = sum(groups.values())
    lines.append("  whole select, profiled share by where the time is spent:")
    for name, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {name:46s} {seconds / total * 100:5.1f} %")
    return "\n".join(lines)


def prefix_cost(redis_url: str, n: int = 3000) -> str:
    """Whole selects through WSGI (no HTTP) with 64 fingerprints, matched against the worker's mirror of the
    shared prefix index, and without, interleaved so that both see the same machine; the index holds 200 prompts
    on the 8 members, written through Redis and read back into the mirror as another replica's would be."""
    import hashlib

    from loguru import logger

    from llmsched.api.app import create_app
    from llmsched.shared.prefix_index import PrefixIndex
    from llmsched.shared.store import Store, connect

    logger.remove()
    store = Store(connect(redis_url, socket_timeout=1.0))
    app = create_app(store)
    state = app.extensions["llmsched.routing"]

    def fps(tag: int) -> list[str]:
        out, digest = [], b""
        for i in range(64):
            digest = hashlib.sha1(digest + f"{tag}:{i}".encode()).digest()
            out.append(digest[:8].hex())
        return out

    writer = PrefixIndex(store.client, store.keys)  # another replica's records
    for tag in range(200):
        writer.record("bench_pool:Common", MEMBERS[tag % len(MEMBERS)], fps(tag), 0)
    writer.flush()
    state.prefix.lookup("bench_pool:Common", None, fps(0))  # this worker decides with hints: it follows them
    while state.prefix.lookup("bench_pool:Common", None, fps(199)) == {}:
        time.sleep(0.005)
    plain = PAYLOAD.encode()
    hinted = [(PAYLOAD[:-1] + ',"prefix":%s}' % str(fps(t)).replace("'", '"')).encode() for t in range(200)]

    def once(body: bytes) -> float:
        started = time.perf_counter()
        call_select(app, body)
        return (time.perf_counter() - started) * 1e6

    for i in range(300):  # warm-up
        once(plain)
        once(hinted[i % len(hinted)])
    without, with_fps, pings = [], [], []
    for i in range(n):
        without.append(once(plain))
        with_fps.append(once(hinted[i % len(hinted)]))
        started = time.perf_counter()
        store.client.ping()  # the machine's own Redis round trip, measured alongside
        pings.append((time.perf_counter() - started) * 1e6)
    state.stop()

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))]

    p99_without, p99_with = pct(without, 0.99), pct(with_fps, 0.99)
    return (
        f"in-process select, 8-member pool, {n} each, interleaved: without fingerprints (reference) "
        f"p50 {pct(without, 0.5):.0f} us p99 {p99_without:.0f} us; with 64 fingerprints (the worker's mirror "
        f"of the index) p50 {pct(with_fps, 0.5):.0f} us p99 {p99_with:.0f} us; added at p99 "
        f"{p99_with - p99_without:.0f} us; a bare Redis PING from the same process: p50 {pct(pings, 0.5):.0f} us "
        f"p99 {pct(pings, 0.99):.0f} us"
    )


def _group(filename: str, func: str) -> str:
    if "/redis/" in filename:
        return "redis-py (request, parse reply)"
    if "socket" in func or "sendall" in func or "recv" in func:
        return "socket calls (Redis round trip, dispatch send)"
    if "/prometheus_client/" in filename:
        return "prometheus_client (metrics)"
    if "orjson" in func or "json" in func:
        return "JSON (request body, snapshot)"
    if "/shared/routing/" in filename or "/shared/members" in filename or "ipaddress" in filename:
        return "decision pipeline (filters, herd pick)"
    if "/api/" in filename or "/shared/" in filename:
        return "llmsched API glue"
    return "other (stdlib, loguru)"
