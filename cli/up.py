"""`llmsched up --config FILE`: the whole scheduler on one machine, as supervised child processes.

It starts the poller, the scraper, the scoring worker(s) and the API (gunicorn), each as
`python -m llmsched <command> --config FILE`; with `--ha`, two pollers (a lease in Redis lets one work) and two
scrapers; `--scrapers N` starts N scrapers, which split the members among themselves (docs/ha.md). Without a Redis
(neither `redis.url`, `REDIS_URL` nor `redis.sentinels`) it first
starts a private redis-server on 127.0.0.1 (free port, temp dir, no persistence) and gives every child its URL in
`REDIS_URL`; if that Redis dies it is started again, empty, and the children write their state back by themselves
(shared/watchdog.py). A child that exits is restarted after a backoff that doubles with each quick failure (0.5 s up to
30 s; a run longer than 30 s resets it). The scorers and the scraper keep the data fresh, so their backoff stops at
a third of `scheduler.stale_after` (1 s by default): one of them crash-looping must not leave every pool stale.
SIGINT (Ctrl-C) or SIGTERM stops everything: SIGTERM to every child, up to 4 s to exit, then SIGKILL; the private
Redis is stopped last. The whole stop takes less than 5 s.

Each child runs in its own process group (so a terminal's Ctrl-C reaches only this supervisor, which then stops
the children in order) and, on Linux, gets SIGTERM if the supervisor dies without cleaning up.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HELP = "run poller, scraper, scoring worker and API as supervised processes (private Redis if none is set)"

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHILD_GRACE_S = 4.0  # SIGTERM -> SIGKILL; leaves room for Redis within a 5 s stop
REDIS_GRACE_S = 0.8
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a child that ran this long is healthy again: its backoff starts over
FRESHNESS_ROLES = ("scorer", "scraper")  # a pool turns stale stale_after after the last of their work
POLL_S = 0.1


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="scheduler-config.yaml")
    parser.add_argument("--workers", type=_count, default=2, help="API (gunicorn) worker processes (default 2)")
    parser.add_argument("--scorers", type=_count, default=1, help="scoring worker processes (default 1)")
    parser.add_argument(
        "--ha",
        action="store_true",
        help="two pollers and two scrapers: one of each works, the other takes over within 5 s",
    )
    parser.add_argument(
        "--scrapers",
        type=_count,
        default=None,
        help="scraper processes; they split the members among themselves and take over a dead one's share "
        "within 5 s (default 1, 2 with --ha)",
    )
    parser.add_argument(
        "--metrics-ports",
        choices=("config", "free"),
        default="config",
        help="ports of the poller/scraper/scorer /metrics endpoints: `config` = telemetry.*_port "
        "(a second scorer, poller or scraper takes the next unused number), `free` = any free "
        "port each; printed at start (default config; the API's /metrics is on the API port)",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal():
    """A preexec_fn asking Linux to SIGTERM the child when this process dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child
    except OSError:
        return None
    return lambda: libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _signal(proc: subprocess.Popen, sig: int, group: bool = False) -> None:
    """Signal the child, or with `group` its whole process group (its own children too: gunicorn's workers)."""
    try:
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Child:
    """One supervised command and its restart state."""

    name: str
    argv: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)  # this child's own settings (its metrics port)
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_failures: int = 0
    restart_at: float = 0.0
    restarts: int = 0
    backoff_max: float = BACKOFF_MAX_S

    def start(self, env: dict[str, str], logger) -> None:
        self.proc = subprocess.Popen(
            self.argv, env={**env, **self.extra_env}, process_group=0, preexec_fn=_parent_death_signal()
        )
        self.started_at = time.monotonic()
        logger.info("started {} (pid {})", self.name, self.proc.pid)

    def reap(self, now: float, logger) -> None:
        """Called when the process has exited: schedule the restart with backoff."""
        assert self.proc is not None
        code, ran = self.proc.returncode, now - self.started_at
        self.proc = None
        self.quick_failures = 0 if ran >= STABLE_AFTER_S else self.quick_failures + 1
        delay = min(self.backoff_max, BACKOFF_FIRST_S * 2 ** max(0, self.quick_failures - 1))
        self.restart_at = now + delay
        self.restarts += 1
        how = f"signal {-code}" if code < 0 else f"code {code}"
        logger.error(
            "{} exited ({}) after {:.1f} s; restart #{} in {:.1f} s", self.name, how, ran, self.restarts, delay
        )


@dataclass
class PrivateRedis:
    """A throw-away redis-server for one `up`: 127.0.0.1 only, no persistence, files in a temp dir."""

    binary: str
    port: int = 0
    workdir: str = ""
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        import redis

        if not self.workdir:
            self.workdir = tempfile.mkdtemp(prefix="llmsched-redis-")
        for _ in range(3):  # the free port may be taken between choosing and binding it
            self.port = self.port or free_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self.workdir,
                    "--logfile",
                    os.path.join(self.workdir, "redis.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                process_group=0,
                preexec_fn=_parent_death_signal(),
            )
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    time.sleep(0.05)
            self.stop(keep_dir=True)
            self.port = 0
        raise RuntimeError(f"redis-server did not start (log: {os.path.join(self.workdir, 'redis.log')})")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, keep_dir: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(REDIS_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not keep_dir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def child_commands(
    config_path: str, workers: int, scorers: int, available: set[str], ha: bool = False, scrapers: int | None = None
) -> list[Child]:
    base = [sys.executable, "-m", "llmsched.cli.main"]
    copies = {"poller": 2 if ha else 1, "scraper": scrapers or (2 if ha else 1)}
    wanted = [
        (f"{role}-{i + 1}" if copies[role] > 1 else role, [role, "--config", config_path])
        for role in ("poller", "scraper")
        for i in range(copies[role])
    ]
    wanted += [
        (f"scorer-{i + 1}" if scorers > 1 else "scorer", ["scorer", "--config", config_path]) for i in range(scorers)
    ]
    wanted.append(("api", ["api", "--config", config_path, "--workers", str(workers)]))
    return [Child(name, base + argv) for name, argv in wanted if argv[0] in available]


def cap_freshness_backoff(children: list[Child], stale_after: float) -> None:
    """Restart a crashed scorer or scraper within a third of `stale_after`, leaving the rest of it for the process
    to start and write again before the snapshots it feeds turn stale."""
    for child in children:
        if child.name.split("-")[0] in FRESHNESS_ROLES:
            child.backoff_max = min(BACKOFF_MAX_S, stale_after / 3)


def assign_metrics_ports(children: list[Child], telemetry, free: bool) -> dict[str, int]:
    """Give each collector and scorer child its /metrics port (LLMSCHED_METRICS_PORT): the configured one, or with
    `free` any free port. Ports are distinct: a child whose port another already has (scorer-2.., the second
    poller/scraper of --ha) takes the next number no child uses; a configured 0 (off) stays 0. Returns name -> port."""
    configured = {"poller": telemetry.poller_port, "scraper": telemetry.scraper_port}
    taken: set[int] = set()
    ports: dict[str, int] = {}
    for child in children:
        kind = child.argv[3] if len(child.argv) > 3 else ""  # [python, -m, llmsched.cli.main, <command>, ...]
        if kind not in ("poller", "scraper", "scorer"):
            continue
        if free:
            port = free_port()
            while port in taken:
                port = free_port()
        else:
            port = configured.get(kind, telemetry.scorer_port)
            while port and port in taken:
                port += 1
        taken.add(port)
        ports[child.name] = port
        child.extra_env["LLMSCHED_METRICS_PORT"] = str(port)
    return ports


WILDCARDS = ("0.0.0.0", "::")


def metrics_host(config) -> str:
    """Where the children's /metrics listen: `telemetry.host` when it names an address, else (the default, a
    wildcard) the API's own host, so a stack whose API listens on 127.0.0.1 exposes nothing on other addresses."""
    host = config.telemetry.host
    return config.global_.api_host if host in WILDCARDS else host


def bind_metrics_host(children: list[Child], config) -> str:
    """Give each child with a /metrics port (assign_metrics_ports) its listen address; returns it."""
    host = metrics_host(config)
    for child in children:
        if "LLMSCHED_METRICS_PORT" in child.extra_env:
            child.extra_env["LLMSCHED_METRICS_HOST"] = host
    return host


def metrics_addresses(ports: dict[str, int], config) -> str:
    host = metrics_host(config)
    host = host if host not in WILDCARDS else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    shown = [f"{name} http://{host}:{port}/metrics" for name, port in ports.items() if port]
    return ", ".join(shown + [f"api {api_address(config)}/metrics"])


def child_environment(redis_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if redis_url:
        env["REDIS_URL"] = redis_url
    # The children must import this very tree, whether or not it is installed, from any working directory.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str], redis_server: PrivateRedis | None, logger):
        self.children = children
        self.env = env
        self.redis = redis_server
        self.log = logger
        self.stopping: str | None = None

    def request_stop(self, signum: int, _frame) -> None:
        self.stopping = self.stopping or signal.Signals(signum).name

    def loop(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            if self.redis is not None and not self.redis.alive():
                self._restart_redis()
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None:
                    child.reap(now, self.log)
                if child.proc is None and now >= child.restart_at and not self.stopping:
                    child.start(self.env, self.log)
            time.sleep(POLL_S)

    def _restart_redis(self) -> None:
        # Its data is gone: start it again on the same port. Each child notices the empty Redis within half a
        # second and writes back what it last wrote (llmsched.shared.watchdog), so none of them needs a restart.
        self.log.error("the private redis-server died; starting it again (empty: the processes write their state back)")
        self.redis.stop(keep_dir=True)
        self.redis.start()

    def shutdown(self) -> None:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        self.log.info("stopping ({}): {}", self.stopping or "exit", ", ".join(c.name for c in running) or "nothing")
        for child in running:  # each stops its own children (gunicorn its workers) gracefully
            _signal(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + CHILD_GRACE_S
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in running):
            time.sleep(0.05)
        for child in running:
            if child.proc.poll() is None:
                self.log.warning("{} did not stop within {:g} s: killing it", child.name, CHILD_GRACE_S)
                _signal(child.proc, signal.SIGKILL, group=True)
                child.proc.wait()
        if self.redis is not None:
            self.redis.stop()


def api_address(config) -> str:
    host = config.global_.api_host
    shown = "127.0.0.1" if host in WILDCARDS else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{config.global_.api_port}"


def run(args: argparse.Namespace) -> int:
    from loguru import logger

    from llmsched.cli.main import COMMANDS
    from llmsched.cli.process import load
    from llmsched.shared.logging import setup_logging
    from llmsched.shared.redis_conn import RedisTarget, target_from_config

    if (config := load(args.config)) is None:
        return 1
    setup_logging("up", config.global_.log_level, config.global_.log_format)
    config_path = os.path.abspath(args.config)
    available = {name for name, _ in COMMANDS}
    for needed in ("poller", "scraper", "scorer", "api"):
        if needed not in available:
            logger.error("`llmsched {}` is not available in this build: not started", needed)

    private = None
    target = target_from_config(config.redis)
    if not target:
        binary = shutil.which("redis-server")
        if binary is None:
            print(
                "error: no Redis configured (redis.url / REDIS_URL / redis.sentinels) and no redis-server to start "
                "a private one: install redis-server (`make install` does) or set REDIS_URL",
                file=sys.stderr,
            )
            return 1
        private = PrivateRedis(binary)
        try:
            private.start()
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            private.stop()
            return 1
        target = RedisTarget(url=private.url)

    children = child_commands(config_path, args.workers, args.scorers, available, args.ha, args.scrapers)
    cap_freshness_backoff(children, config.scheduler.effective_stale_after)
    ports = assign_metrics_ports(children, config.telemetry, args.metrics_ports == "free")
    bind_metrics_host(children, config)
    supervisor = Supervisor(children, child_environment(private.url if private else None), private, logger)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, supervisor.request_stop)
    print(
        f"llmsched up: API on {api_address(config)} (POST /scheduler/select, GET /pools/status); "
        f"Redis {'private ' if private else ''}{target.describe()}; config {config_path}; Ctrl-C stops",
        flush=True,
    )
    print(
        f"llmsched up: metrics {metrics_addresses(ports, config)}; status page {api_address(config)}/ui",
        flush=True,
    )
    try:
        supervisor.loop()
    finally:
        supervisor.shutdown()
    logger.info("stopped")
    return 0
