"""`make bench-api`: throughput and latency of POST /scheduler/select on this machine.

Starts a private redis-server and the API under gunicorn (as `llmsched api` does), seeds a pool, then drives it with
wrk: first one new TCP connection per request (the iRule's pattern: HTTP/1.0-style `Connection: close`), then
keep-alive. Prints req/s, p50, p99 and errors for each, and a cProfile breakdown of one decision in-process.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmsched.bench.processes import free_port, private_redis, stopping, wait_port

REPO = Path(__file__).resolve().parents[1]
MEMBERS = [f"10.0.0.{i}:8000" for i in range(1, 9)]
PAYLOAD = '{"pool_name":"bench_pool","partition":"Common","members":[%s]}' % ",".join(f'"{m}"' for m in MEMBERS)


def wrk_script(close: bool) -> str:
    body = PAYLOAD.replace('"', '\\"')
    lines = ['wrk.method = "POST"', f'wrk.body = "{body}"', 'wrk.headers["Content-Type"] = "application/json"']
    if close:
        lines.append('wrk.headers["Connection"] = "close"')
    # Count `none` answers: under overload a decision degrades to `none` rather than failing, so a run must
    # show how many answers were real picks.
    lines += [
        "local threads = {}",
        "function setup(thread) table.insert(threads, thread) end",
        "function init(args) nones = 0 end",
        'function response(status, headers, body) if body == "none" then nones = nones + 1 end end',
        "function done(summary, latency, requests)",
        "  local total = 0",
        '  for _, t in ipairs(threads) do total = total + t:get("nones") end',
        '  io.write(string.format("none answers: %d\\n", total))',
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(port: int, close: bool, seconds: int, connections: int, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(wrk_script(close))
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        f.name,
        f"http://127.0.0.1:{port}/scheduler/select",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    return parse_wrk(out) | {"command": " ".join(cmd[:-3] + ["-s", "select.lua", cmd[-1]])}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out: str) -> dict:
    # The latency distribution lines alone: "+/- Stdev" columns also end in '%'.
    p50 = re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    nones = int(m.group(1)) if (m := re.search(r"^none answers: (\d+)$", out, re.M)) else 0
    return {"rps": rps, "p50_ms": _ms(p50), "p99_ms": _ms(p99), "requests": total, "errors": errors, "none": nones}


def profile_decisions(redis_url: str, n: int = 5000) -> str:
    """Where one decision's CPU goes in the API process: the WSGI app called directly (no network, no gunicorn),
    cProfile's own time grouped by the package it is spent in."""
    import io as _io

    from loguru import logger

    from llmsched.api.app import create_app
    from llmsched.shared.store import Store, connect

    logger.remove()  # as in production at INFO: per-decision lines are DEBUG
    app = create_app(Store(connect(redis_url, socket_timeout=1.0)))
    body = PAYLOAD.encode()

    def decide_once() -> None:
        environ = {
            "PATH_INFO": "/scheduler/select",
            "REQUEST_METHOD": "POST",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": _io.BytesIO(body),
        }
        answer = app.wsgi_app(environ, lambda status, headers: None)
        b"".join(answer)
        answer.close()

    for _ in range(500):
        decide_once()
    start = time.perf_counter()
    for _ in range(n):
        decide_once()
    plain_us = (time.perf_counter() - start) / n * 1e6
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        decide_once()
    prof.disable()
    groups: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(prof).stats.items():
        groups[_group(filename, func)] = groups.get(_group(filename, func), 0.0) + tottime
    total = sum(groups.values())
    lines = [
        f"in-process: {plain_us:.0f} us per decision, Redis round trip included (WSGI app called directly, no HTTP); "
        f"profiled share by where the time is spent:"
    ]
    for name, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {name:46s} {seconds / total * 100:5.1f} %")
    return "\n".join(lines)


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile breakdown of one decision")
    ap.add_argument(
        "--no-herd-control",
        action="store_true",
        help="seed the pool without herd control (no dispatch count written after each answer)",
    )
    args = ap.parse_args(argv)
    if not shutil.which("wrk") or not shutil.which("redis-server"):
        raise SystemExit("needs wrk and redis-server (make bench-api installs them)")

    from llmsched.scorer import step  # noqa: F401  (fail early if the project is not installed)

    from tests.helpers import make_store, seed

    api_port = free_port()
    with private_redis() as (url, _workdir), stopping() as procs:
        seed(
            make_store(url),
            {
                m: {"waiting_queue": float(i), "cache_usage": 0.1 * i, "running_req": 2.0 * i}
                for i, m in enumerate(MEMBERS)
            },
            pool="bench_pool",
            stale_after=3600.0,
            herd_control=not args.no_herd_control,
        )
        env = {**os.environ, "LLMSCHED_LOG_LEVEL": "warning"}
        api_proc = procs(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llmsched.cli.main",
                    "api",
                    "--redis-url",
                    url,
                    "--bind",
                    f"127.0.0.1:{api_port}",
                    "--workers",
                    str(args.workers),
                ],
                env=env,
                cwd=REPO,
            )
        )
        wait_port(api_port, api_proc, "API")
        print(
            f"llmsched bench-api: {len(MEMBERS)}-member pool, gunicorn {args.workers} sync workers, "
            f"wrk {args.threads} threads x {args.connections} connections, {args.seconds} s per run, "
            f"{os.cpu_count()} cores shared by wrk, redis-server and the API"
        )
        for label, close in (("connection per request (iRule pattern)", True), ("keep-alive", False)):
            print(f"  {label}: 2 s warm-up, then {args.seconds} s measured ...", flush=True)
            run_wrk(api_port, close, 2, args.connections, args.threads)  # warm-up
            r = run_wrk(api_port, close, args.seconds, args.connections, args.threads)
            print(
                f"{label:40s} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms   "
                f"errors {r['errors']}   none {r['none']}   ({r['requests']} requests)"
            )
            print(f"    {r['command']}")
        if args.profile:
            print(profile_decisions(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
