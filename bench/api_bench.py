"""`make bench-api`: throughput and latency of POST /scheduler/select on this machine.

Starts a private redis-server and the API under gunicorn (as `llmsched api` does), seeds a pool, then, in one run:
* wrk, one new TCP connection per request (the iRule's pattern), against the API and against a bare WSGI
  hello-world under `gunicorn -w 2` (sync), the reference measured alongside (bench/hello_wsgi.py); then keep-alive;
* one connection at a time (sequential iRule-style decisions): p50, p99;
* with `--slow-clients`: the same sequential decisions, each with the iRule's 500 ms budget, while 50 idle,
  50 slow-header and 50 slow-body connections are held (bench/slow_clients.py), plus /health;
* the in-process cost of one decision from the worker's memory against one that reads Redis first (the old path);
* the cost of prompt fingerprints: whole selects through WSGI with 64 fingerprints (matched against the worker's
  in-memory mirror of the prefix index) against the same selects without, interleaved, p50 and p99
  (`--prefix-only` runs just this);
* with `--stack`: connection per request against a whole `llmsched up` stack that keeps polling, scraping and
  scoring emulated engines and BIG-IP (bench/api_stack.py), with the hello-world measured in the same run.
`none` answers are counted everywhere: under overload a decision degrades to `none` rather than failing.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmsched.bench.api_inprocess import MEMBERS, PAYLOAD, decision_cost, prefix_cost
from llmsched.bench.processes import free_port, private_redis, stopping, tree_cpu_seconds, wait_port

REPO = Path(__file__).resolve().parents[1]


def wrk_script(close: bool, payload: str = PAYLOAD) -> str:
    body = payload.replace('"', '\\"')
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


def run_wrk(port: int, close: bool, seconds: int, connections: int, threads: int, payload: str = PAYLOAD) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(wrk_script(close, payload))
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


def one_at_a_time(port: int, n: int, budget_s: float | None = None) -> dict:
    """Sequential decisions, a new connection each (the iRule's pattern); with `budget_s`, a decision not answered
    within it counts as a timeout (the iRule's sideband budget) instead of failing the run."""
    latencies, nones, timeouts, errors = [], 0, 0, 0
    for _ in range(n):
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=budget_s or 10.0)
            conn.request(
                "POST", "/scheduler/select", PAYLOAD, {"Content-Type": "application/json", "Connection": "close"}
            )
            response = conn.getresponse()
            answer = response.read()
            conn.close()
        except TimeoutError:
            timeouts += 1
            continue
        except OSError:
            errors += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            errors += 1
        elif answer == b"none":
            nones += 1
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {"n": n, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "none": nones, "timeouts": timeouts, "errors": errors}


def health_status(port: int) -> str:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
        return str(status)
    except OSError as exc:
        return f"no answer ({type(exc).__name__})"


def _gunicorn(procs, argv: list[str], port: int, what: str, env: dict) -> subprocess.Popen:
    proc = procs(subprocess.Popen(argv, env=env, cwd=REPO))
    wait_port(port, proc, what)
    return proc


def measured_wrk(port: int, proc: subprocess.Popen, close: bool, args: argparse.Namespace) -> dict:
    """A 2 s warm-up, then the measured wrk run, with the server's CPU time per request (gunicorn master and
    workers, from /proc): a figure that other work on the machine disturbs far less than req/s."""
    run_wrk(port, close, 2, args.connections, args.threads)
    before = tree_cpu_seconds(proc.pid)
    r = run_wrk(port, close, args.seconds, args.connections, args.threads)
    r["cpu_us"] = (tree_cpu_seconds(proc.pid) - before) / max(1, r["requests"]) * 1e6
    return r


def _wrk_line(label: str, r: dict, reference: dict | None = None) -> str:
    ratio = f"   {r['rps'] / reference['rps']:.2f}x the hello-world" if reference else ""
    share = r["none"] / r["requests"] * 100 if r["requests"] else 0.0
    return (
        f"{label:44s} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms   "
        f"errors {r['errors']}   none {r['none']} ({share:.2f} %)   ({r['requests']} requests)   "
        f"server CPU {r.get('cpu_us', float('nan')):.0f} us/request{ratio}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (API and hello-world)")
    ap.add_argument("--worker-class", default="", help="the API's gunicorn worker class (default: the shipped one)")
    ap.add_argument("--sequential", type=int, default=2000, help="decisions one at a time")
    ap.add_argument("--close-only", action="store_true", help="skip the keep-alive runs")
    ap.add_argument(
        "--stack",
        action="store_true",
        help="also: connection per request with a whole `llmsched up` stack running (emulated engines and BIG-IP)",
    )
    ap.add_argument("--slow-clients", action="store_true", help="also: decisions while 150 slow connections are held")
    ap.add_argument("--profile", action="store_true", help="also print the in-process cost of one decision")
    ap.add_argument("--prefix-only", action="store_true", help="only the cost of 64 fingerprints (no wrk runs)")
    ap.add_argument(
        "--no-herd-control",
        action="store_true",
        help="seed the pool without herd control (no dispatch count after each answer)",
    )
    args = ap.parse_args(argv)
    if not shutil.which("wrk") or not shutil.which("redis-server"):
        raise SystemExit("needs wrk and redis-server (make bench-api installs them)")
    if args.prefix_only:
        return _prefix_only(args)

    from llmsched.bench.slow_clients import SlowClients
    from llmsched.scorer import step  # noqa: F401  (fail early if the project is not installed)

    from tests.helpers import make_store, seed

    api_port, hello_port, hello_gevent_port = free_port(), free_port(), free_port()
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
        env = {**os.environ, "LLMSCHED_LOG_LEVEL": "warning", "LLMSCHED_API_ALLOWED_CLIENTS": "127.0.0.1"}
        if args.worker_class:
            env["LLMSCHED_API_WORKER_CLASS"] = args.worker_class
        api = [sys.executable, "-m", "llmsched.cli.main", "api", "--redis-url", url]
        api += ["--bind", f"127.0.0.1:{api_port}", "--workers", str(args.workers)]
        api_proc = _gunicorn(procs, api, api_port, "API", env)
        hello = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{hello_port}"]
        hello += ["--log-level", "warning", "llmsched.bench.hello_wsgi:app"]
        hello_proc = _gunicorn(procs, hello, hello_port, "hello-world", env)
        # The same hello-world under the API's worker class: what the serving model itself costs.
        hello_gevent = [sys.executable, "-m", "gunicorn", "-c", "python:llmsched.api.gunicorn_conf"]
        hello_gevent += ["-b", f"127.0.0.1:{hello_gevent_port}", "llmsched.bench.hello_wsgi:app"]
        gevent_env = {
            **env,
            "LLMSCHED_API_WORKERS": str(args.workers),
            "LLMSCHED_API_BIND": f"127.0.0.1:{hello_gevent_port}",
        }
        hello_gevent_proc = _gunicorn(
            procs, hello_gevent, hello_gevent_port, "hello-world (API worker class)", gevent_env
        )
        worker = args.worker_class or "gevent (llmsched.api.worker.ApiWorker)"
        print(
            f"llmsched bench-api: {len(MEMBERS)}-member pool, API: gunicorn {args.workers} workers ({worker}); "
            f"reference: hello-world WSGI under gunicorn -w {args.workers} (sync); wrk {args.threads} threads x "
            f"{args.connections} connections, {args.seconds} s per run; {os.cpu_count()} cores shared by wrk, "
            f"redis-server, both servers and anything else running on this machine"
        )
        runs = (("connection per request (iRule pattern)", True), ("keep-alive", False))
        for label, close in runs[:1] if args.close_only else runs:
            print(f"  {label}: 2 s warm-up each, then {args.seconds} s measured ...", flush=True)
            ref = measured_wrk(hello_port, hello_proc, close, args)
            r = measured_wrk(api_port, api_proc, close, args)
            same_worker = measured_wrk(hello_gevent_port, hello_gevent_proc, close, args)
            print(_wrk_line(f"{label}, API", r, ref))
            print(_wrk_line(f"{label}, hello-world", ref))
            print(_wrk_line(f"{label}, hello-world, API's worker", same_worker, ref))
            print(f"    {r['command']}")
        one_at_a_time(api_port, 200)  # warm-up
        seq = one_at_a_time(api_port, args.sequential)
        print(
            f"{'one connection at a time, API':44s} p50 {seq['p50_ms']:6.2f} ms   p99 {seq['p99_ms']:6.2f} ms   "
            f"none {seq['none']}   errors {seq['errors']}   ({seq['n']} decisions)"
        )
        for label, port in (("hello-world", hello_port), ("hello-world, API's worker", hello_gevent_port)):
            ref_seq = one_at_a_time(port, args.sequential)
            label = f"one connection at a time, {label}"
            print(f"{label:44s} p50 {ref_seq['p50_ms']:6.2f} ms   p99 {ref_seq['p99_ms']:6.2f} ms")
        if args.slow_clients:
            with SlowClients(api_port, idle=50, slow_header=50, slow_body=50) as slow:
                time.sleep(1.0)
                under = one_at_a_time(api_port, 1000, budget_s=0.5)
                health = health_status(api_port)
                held = slow.held()
            print(
                f"{'50 idle + 50 slow-header + 50 slow-body held':44s} p50 {under['p50_ms']:6.2f} ms   "
                f"p99 {under['p99_ms']:6.2f} ms   timeouts (500 ms) {under['timeouts']}   none {under['none']}   "
                f"errors {under['errors']}   ({under['n']} decisions; {held} slow connections open at the end, "
                f"{slow.opened} opened in all)   /health: {health}"
            )
        if args.profile:
            print(decision_cost(url))
        print(prefix_cost(url))
    if args.stack:
        from llmsched.bench.api_stack import stack_run

        print("\n".join(stack_run(args, _wrk_line, measured_wrk, run_wrk)), flush=True)
    return 0


def _prefix_only(args: argparse.Namespace) -> int:
    from tests.helpers import make_store, seed

    with private_redis() as (url, _workdir):
        seed(
            make_store(url),
            {m: {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 2.0} for m in MEMBERS},
            pool="bench_pool",
            stale_after=3600.0,
            herd_control=not args.no_herd_control,
        )
        print(prefix_cost(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
