"""`llmsched api`: serve the decision API with gunicorn; it needs only Redis (from the flag, env or config).

Besides the decision endpoints (docs/api.md) it serves `GET /metrics` (Prometheus, summed over the gunicorn
workers: a private PROMETHEUS_MULTIPROC_DIR per run unless the environment sets one) and the status page `GET /ui`.
"""

from __future__ import annotations

import argparse
import os
import sys

from llmsched.api.clients import ENV as ALLOWED_ENV
from llmsched.api.limits import ENV_PER_SOURCE, ENV_READ_TIMEOUT

GUNICORN_CONF = "python:llmsched.api.gunicorn_conf"  # a module of the package, so an installed copy finds it
HELP = "serve the decision API with gunicorn (needs only Redis)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="read redis.* and global.api_host/api_port from this config file")
    parser.add_argument(
        "--redis-url", help="Redis URL (default: $REDIS_URL, else the config's redis.url or redis.sentinels)"
    )
    parser.add_argument(
        "--bind", help="host:port to listen on (default: the config's api_host:api_port; without one 127.0.0.1:8080)"
    )
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default: one per core, at least 2)")
    parser.add_argument(
        "--read-timeout",
        type=float,
        help="seconds a client has to send a request's headers, and again its body (default 1)",
    )
    parser.add_argument(
        "--max-connections-per-source",
        type=int,
        help="open connections one client address may hold per worker (default 256)",
    )


def api_environment(args: argparse.Namespace, env: dict[str, str], config=None) -> dict[str, str]:
    """The environment a gunicorn API process gets: where Redis is (from `config`, the loaded `--config`, unless
    the environment or `--redis-url` says), its decision timeout, and where to listen."""
    env = dict(env)
    host, port = "127.0.0.1", 8080  # without a config, only this host; a config's api_host says otherwise
    if config is not None:
        from llmsched.shared.redis_conn import target_from_config

        host, port = config.global_.api_host, config.global_.api_port
        if target := target_from_config(config.redis):  # REDIS_URL, if set, is already its URL
            for name, value in target.env().items():
                env.setdefault(name, value)
        env.setdefault("LLMSCHED_NAMESPACE", config.redis.namespace)
        env.setdefault("LLMSCHED_REDIS_TIMEOUT", str(config.redis.decision_timeout))
        env.setdefault("LLMSCHED_LOG_LEVEL", config.global_.log_level)
        env.setdefault("LLMSCHED_LOG_FORMAT", config.global_.log_format)
        if config.global_.api_allowed_clients is not None:
            env[ALLOWED_ENV] = ",".join(config.global_.api_allowed_clients)
        if config.global_.admin_token:
            env["LLMSCHED_ADMIN_TOKEN"] = config.global_.admin_token.reveal()
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    env["LLMSCHED_API_BIND"] = args.bind or env.get("LLMSCHED_API_BIND") or f"{host}:{port}"
    if args.workers:
        env["LLMSCHED_API_WORKERS"] = str(args.workers)
    if getattr(args, "read_timeout", None) is not None:
        env[ENV_READ_TIMEOUT] = repr(args.read_timeout)
    if getattr(args, "max_connections_per_source", None) is not None:
        env[ENV_PER_SOURCE] = str(args.max_connections_per_source)
    # Per run, for the workers' metric files; api/gunicorn_conf.py empties it at start, removes it at exit.
    from llmsched.api.metrics_dir import private_metrics_dir

    private_metrics_dir(env)
    return env


def run(args: argparse.Namespace) -> int:
    config = None
    if args.config:
        from llmsched.cli.process import load

        if (config := load(args.config)) is None:
            return 1
    env = api_environment(args, dict(os.environ), config)
    argv = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, "llmsched.api.wsgi:app"]
    os.execve(sys.executable, argv, env)
    return 0  # not reached: exec replaces this process
