"""`llmsched demo` (what `make run` runs): the whole scheduler against an emulated BIG-IP and engines, with traffic.

It starts four emulated engines of different kinds and speeds on free 127.0.0.1 ports (a fast vLLM with the new
KV gauge name, a slow vLLM with the old one, a fast vLLM with DP=2, a medium SGLang), an emulated BIG-IP whose pool
`demo_pool` holds them, writes a config for them into a temp dir (the BIG-IP password only in an environment
variable), runs `llmsched up` on it with a private Redis, and sends completions the way an iRule-fronted BIG-IP
would: ask `/scheduler/select`, then send the request to the member it names. Every few seconds it prints each
member's score, load and share of the decisions, so you can watch load move away from the slow engine. Runs
until Ctrl-C, or `--duration S` seconds of traffic.

Prefix hints (on unless `--no-prefix-hints`): the clients send RAG-style completions, one of 24 long
documents followed by a short question, and fingerprint each request body exactly as the iRule does with
`prefix_hints 1` (llmsched.cli.demo_prefix), sending them and the model with the select. The table's `hit%`
column is each engine's prefix-cache hit rate over the window, from its own /metrics counters: it rises as the
scheduler learns which engine holds which document.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

from llmsched.cli.demo_feed import UpLog
from llmsched.cli.demo_prefix import MODEL, EngineCounters, completion_body, fingerprints

HELP = "run the scheduler against emulated BIG-IP and engines, with demo traffic and a live table"

POOL, PARTITION = "demo_pool", "Common"
PASSWORD_ENV = "LLMSCHED_DEMO_F5_PASSWORD"
# label -> `llmsched emulate engine` options
ENGINES: tuple[tuple[str, list[str]], ...] = (
    ("vllm fast", ["--engine", "vllm", "--speed", "fast", "--kv-name", "new"]),
    ("vllm slow", ["--engine", "vllm", "--speed", "slow", "--kv-name", "old"]),
    ("vllm dp=2", ["--engine", "vllm", "--speed", "fast", "--dp", "2", "--kv-name", "both"]),
    ("sglang", ["--engine", "sglang", "--speed", "0.4"]),
)
BANNER = re.compile(r"listening on https?://(?:\[[^\]]+\]|[^:\s/]+):(\d+)(?:.*\bcert=(\S+))?")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds of traffic")
    parser.add_argument("--clients", type=int, default=16, help="concurrent demo clients (default 16)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between tables (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (config, logs) at exit")
    parser.add_argument(
        "--no-prefix-hints",
        dest="prefix_hints",
        action="store_false",
        help="send selects without prompt fingerprints, as the iRule does with prefix_hints 0",
    )


def config_text(f5_port: int, cert: str | None, api_port: int) -> str:
    return f"""# written by `llmsched demo`; edit it while the demo runs to try hot reload (checked every 2 s)
global:
  interval: 2
  api_host: 127.0.0.1
  api_port: {api_port}
  log_level: INFO
f5:
  host: 127.0.0.1
  port: {f5_port}
  username: admin
  password_env: {PASSWORD_ENV}
  {f"ca_bundle: {cert}" if cert else "verify: false"}
scheduler:
  pool_fetch_interval: 2
  metrics_fetch_interval: 1000
modes:
  - name: s2
    w_a: 0.4
    w_b: 0.3
    w_g: 0.3
pools:
  - name: {POOL}
    partition: {PARTITION}
    engine_type: auto
    metrics:
      timeout: 1
"""


class Processes:
    """The demo's child processes, each in its own process group, stopped in reverse order."""

    def __init__(self, env: dict[str, str], logdir: str) -> None:
        from llmsched.cli.up import _parent_death_signal

        self.env, self.logdir, self.preexec = env, logdir, _parent_death_signal
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], banner: bool) -> subprocess.Popen:
        log = open(os.path.join(self.logdir, f"{name.replace(' ', '_').replace('=', '')}.log"), "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmsched.cli.main", *argv],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if banner else log,
            stderr=log,
            process_group=0,
            preexec_fn=self.preexec(),
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, grace: float = 6.0) -> None:
        """Stop the newest first, each before the next (`up` must log out of the BIG-IP before it goes)."""
        from llmsched.cli.up import _signal

        for _, proc in reversed(self.procs):
            _signal(proc, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL, group=True)
                proc.wait()


def read_banner(proc: subprocess.Popen, name: str, timeout: float = 20.0) -> tuple[int, str | None]:
    """(port, cert path) from the line an emulator prints once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline().decode(errors="replace")
            if match := BANNER.search(line):
                return int(match.group(1)), match.group(2)
            if not line and proc.poll() is not None:
                break
    raise RuntimeError(f"the {name} emulator did not start (see its log)")


README_PORT = 8080  # the port the README's examples use


def api_port() -> int:
    """8080 when it is free on 127.0.0.1, so the README's URLs work; else any free port (the banner says which)."""
    import socket

    from llmsched.cli.up import free_port

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", README_PORT))
        except OSError:
            return free_port()
    return README_PORT


def start_stack(procs: Processes, workdir: str) -> tuple[dict[str, str], str, subprocess.Popen]:
    """Emulators, config, `llmsched up`; returns (member -> label, API base URL, the up process)."""
    engines = [
        (
            label,
            procs.start(
                f"engine {label}",
                ["emulate", "engine", "--host", "127.0.0.1", "--port", "0", "--model", MODEL, *opts],
                banner=True,
            ),
        )
        for label, opts in ENGINES
    ]
    members = {f"127.0.0.1:{read_banner(proc, label)[0]}": label for label, proc in engines}
    f5 = procs.start(
        "bigip",
        [
            "emulate",
            "f5",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--user",
            "admin",
            "--password-env",
            PASSWORD_ENV,
            "--pool",
            f"{POOL}={','.join(members)}",
        ],
        banner=True,
    )
    f5_port, cert = read_banner(f5, "BIG-IP")
    port = api_port()
    path = os.path.join(workdir, "scheduler-config.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(config_text(f5_port, cert, port))
    up = procs.start("up", ["up", "--config", path, "--workers", "2"], banner=False)
    return members, f"http://127.0.0.1:{port}", up


def where_to_look(api: str, members: dict[str, str], workdir: str, redis_url: str | None) -> str:
    import json

    body = json.dumps({"pool_name": POOL, "partition": PARTITION, "members": list(members)}, separators=(",", ":"))
    first = next(iter(members))
    port = api.rsplit(":", 1)[1]
    moved = "" if port == str(README_PORT) else f" (port {README_PORT} was taken)"
    redis_port = redis_url.rsplit(":", 1)[1].split("/")[0] if redis_url else None
    return "\n".join(
        [
            f"llmsched demo: pool {POOL} with {len(members)} emulated engines behind an emulated BIG-IP; API on {api}"
            + moved,
            f"  status page: {api}/ui",
            f"  redis:   {redis_url}   (redis-cli -p {redis_port} --scan --pattern 'llmsched:*')"
            if redis_url
            else f"  redis:   see {workdir}/up.log",
            f"  decide:  curl -s -X POST {api}/scheduler/select -H 'Content-Type: application/json' -d '{body}'",
            f"  status:  curl -s {api}/pools/{POOL}/{PARTITION}/status",
            f"  load:    curl -s -X POST http://{first}/_emulator/metrics -d '{{\"waiting\": 40}}'"
            "   (pin a member's metrics)",
            f"  config:  {workdir}/scheduler-config.yaml (edit it: accepted and rejected reloads show below the"
            " tables), logs: {workdir}/*.log",
        ]
    )


def format_table(
    status: dict,
    members: dict[str, str],
    picks: dict[str, int],
    window: dict[str, int],
    elapsed: float,
    errors: int,
    hits: dict[str, float | None] | None = None,
) -> str:
    total, recent = sum(picks.values()), sum(window.values())
    lines = [
        f"--- {elapsed:5.1f} s  decisions: {total} ({recent} in this window), answered none: "
        f"{picks.get('none', 0)}, request errors: {errors}",
        f"{'member':<22}{'engine':<11}{'score':>7}{'waiting':>9}{'running':>9}{'kv':>6}{'share':>8}{'total':>8}"
        f"{'hit%':>7}",
    ]
    by_id = {f"{m['ip']}:{m['port']}": m for m in status.get("members", [])}
    for member, label in members.items():
        m = by_id.get(member, {})
        metrics = m.get("metrics") or {}

        def num(key: str, fmt: str, metrics: dict = metrics) -> str:
            return format(metrics[key], fmt) if isinstance(metrics.get(key), (int, float)) else "-"

        score = m.get("score")
        lines.append(
            f"{member:<22}{label:<11}{(format(score, '.3f') if score is not None else '-'):>7}"
            f"{num('waiting_queue', '.0f'):>9}{num('running_req', '.0f'):>9}"
            f"{(format(metrics['cache_usage'] * 100, '.0f') + '%') if 'cache_usage' in metrics else '-':>6}"
            f"{window.get(member, 0) / recent * 100 if recent else 0:>7.0f}%"
            f"{picks.get(member, 0) / total * 100 if total else 0:>7.0f}%"
            f"{_rate((hits or {}).get(member)):>7}"
        )
    return "\n".join(lines)


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


async def traffic(
    api: str,
    members: dict[str, str],
    clients: int,
    every: float,
    duration: float | None,
    up: subprocess.Popen,
    up_log: UpLog,
    prefix_hints: bool = True,
) -> int:
    import asyncio
    import random
    from collections import Counter

    import aiohttp

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    picks: Counter[str] = Counter()
    window: Counter[str] = Counter()
    errors = 0
    timeout = aiohttp.ClientTimeout(total=60)
    counters = EngineCounters(members)

    async def client(session: aiohttp.ClientSession, rng: random.Random) -> None:
        nonlocal errors
        while not stop.is_set():
            request = completion_body(rng)
            body: dict = {"pool_name": POOL, "partition": PARTITION, "members": list(members)}
            if prefix_hints:
                body.update(model=MODEL, prefix=fingerprints(request))
            try:
                async with session.post(f"{api}/scheduler/select", json=body) as resp:
                    answer = (await resp.text()).strip()
            except aiohttp.ClientError:
                answer = "none"
            chosen = answer if answer in members else "none"
            picks[chosen] += 1
            window[chosen] += 1
            # `none`: BIG-IP would balance by itself; the demo stands in with a random member.
            target = answer if answer in members else rng.choice(list(members))
            try:
                async with session.post(
                    f"http://{target}/v1/completions", data=request, headers={"Content-Type": "application/json"}
                ) as resp:
                    await resp.read()
                    errors += resp.status != 200
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
                await asyncio.sleep(0.2)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [asyncio.create_task(client(session, random.Random(i))) for i in range(clients)]
        started = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
            elapsed = time.monotonic() - started
            try:
                async with session.get(f"{api}/pools/{POOL}/{PARTITION}/status") as resp:
                    status = await resp.json() if resp.status == 200 else {}
            except aiohttp.ClientError:
                status = {}
            hits = await counters.window(session)
            print(format_table(status, members, picks, window, elapsed, errors, hits), flush=True)
            for event in up_log.reloads():
                print(event, flush=True)
            window.clear()
            if up.poll() is not None:
                print("llmsched up exited unexpectedly; stopping", file=sys.stderr)
                stop.set()
                return 1
            if duration is not None and elapsed >= duration:
                stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(f"demo traffic stopped: {sum(picks.values())} decisions", flush=True)
    return 0


def wait_until_scored(api: str, up: subprocess.Popen, timeout: float = 60.0) -> bool:
    """True once the API answers with a scored member of the demo pool."""
    import json
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and up.poll() is None:
        try:
            with urllib.request.urlopen(f"{api}/pools/{POOL}/{PARTITION}/status", timeout=2) as resp:
                if any(m.get("score") for m in json.load(resp).get("members", [])):
                    return True
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    return False


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    import asyncio
    import secrets
    import shutil

    from llmsched.cli.up import child_environment

    workdir = tempfile.mkdtemp(prefix="llmsched-demo-")
    env = child_environment(None)
    env.pop("REDIS_URL", None)  # the demo always runs on its own private Redis
    env[PASSWORD_ENV] = secrets.token_urlsafe(12)
    procs = Processes(env, workdir)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C while starting (traffic() takes over later)
    code = 1
    try:
        members, api, up = start_stack(procs, workdir)
        print(f"starting the scheduler (logs in {workdir}) ...", flush=True)
        up_log = UpLog(os.path.join(workdir, "up.log"))
        redis_url = up_log.redis_url()
        if not wait_until_scored(api, up):
            print(f"the scheduler did not score {POOL} in time; see {workdir}/up.log", file=sys.stderr)
            args.keep = True
            return 1
        print(where_to_look(api, members, workdir, redis_url), flush=True)
        up_log.reloads()  # only reloads from now on
        code = asyncio.run(
            traffic(api, members, args.clients, args.every, args.duration, up, up_log, args.prefix_hints)
        )
    except KeyboardInterrupt:
        code = 0
    except RuntimeError as exc:
        print(f"error: {exc}; logs in {workdir}", file=sys.stderr)
        args.keep = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.stop()
        if args.keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code
