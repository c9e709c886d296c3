"""The `llmsched` command: one entry point, one subcommand per process or tool.

Subcommands import their modules only when run, so `llmsched check-config` stays fast and a missing optional
dependency of one tool never breaks the others.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GUNICORN_CONF = REPO_ROOT / "deploy" / "gunicorn.conf.py"


def _check_config(args: argparse.Namespace) -> int:
    from cli import check_config
    return check_config.run(args.file)


def _seed(args: argparse.Namespace) -> int:
    from cli import seed
    return seed.run(args)


def api_environment(args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """The environment a gunicorn API process gets: where Redis is, and where to listen."""
    env = dict(env)
    host, port = "0.0.0.0", 8080
    if args.config:
        from shared.config import load_config
        config = load_config(args.config)
        host, port = config.global_.api_host, config.global_.api_port
        if config.redis.url:
            env.setdefault("REDIS_URL", config.redis.url)
        env.setdefault("LLMSCHED_NAMESPACE", config.redis.namespace)
        env.setdefault("LLMSCHED_REDIS_TIMEOUT", str(config.redis.socket_timeout))
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    env["LLMSCHED_API_BIND"] = args.bind or env.get("LLMSCHED_API_BIND") or f"{host}:{port}"
    if args.workers:
        env["LLMSCHED_API_WORKERS"] = str(args.workers)
    return env


def _api(args: argparse.Namespace) -> int:
    env = api_environment(args, dict(os.environ))
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "api.wsgi:app"]
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmsched", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate a scheduler-config.yaml and print the effective config")
    p.add_argument("file")
    p.set_defaults(run=_check_config)

    p = sub.add_parser("api", help="serve the decision API with gunicorn (needs only Redis)")
    p.add_argument("--config", help="read redis and global.api_host/api_port from this config file")
    p.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL, else the config's redis.url)")
    p.add_argument("--bind", help="host:port to listen on (default: the config's api_host:api_port)")
    p.add_argument("--workers", type=int, help="gunicorn worker processes (default: one per core, at least 2)")
    p.set_defaults(run=_api)

    p = sub.add_parser("seed", help="write a scored example pool into Redis, to try the API by hand")
    from cli import seed
    seed.add_arguments(p)
    p.set_defaults(run=_seed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
