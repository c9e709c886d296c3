"""Command line of the emulators: `main(argv)` with the subcommands `f5` and `engine`.

Wired as `llmsched emulate f5|engine ...` (which calls `llmsched.emulators.cli.main(argv)`) and as
`python -m llmsched.emulators f5|engine ...`. Each subcommand prints one line saying where it listens (plus the
certificate path for f5), serves until SIGINT/SIGTERM, then shuts down cleanly and returns 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import yaml
from aiohttp import web

from llmsched.emulators.engine import serve_engine
from llmsched.emulators.engine_state import ENGINES, KV_NAMES, SGLANG_PREFIXES, EngineSpec
from llmsched.emulators.f5 import bound_port, serve_f5
from llmsched.emulators.f5_state import F5State, pool_from_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmsched emulate", description="Run an emulator until SIGINT/SIGTERM.")
    sub = parser.add_subparsers(dest="command", required=True)

    f5 = sub.add_parser("f5", help="BIG-IP iControl REST emulator")
    f5.add_argument("--host", default="127.0.0.1")
    f5.add_argument("--port", type=int, default=8443, help="0 picks a free port (default 8443)")
    f5.add_argument("--config", help="YAML/JSON file with users, pools and token settings")
    f5.add_argument("--no-tls", action="store_true", help="serve plain HTTP instead of HTTPS")
    f5.add_argument("--user", default=None, help="user to create or override (default admin)")
    f5.add_argument("--password-env", default=None, help="environment variable holding that user's password")
    f5.add_argument(
        "--pool",
        action="append",
        default=[],
        metavar="[/PART/]NAME=HOST:PORT,...",
        help="add a pool with members (repeatable), e.g. vllm_pool=127.0.0.1:8001,127.0.0.1:8002",
    )
    f5.add_argument("--token-timeout", type=float, default=None, help="lifetime of a new token, s (1200)")
    f5.add_argument("--max-token-timeout", type=float, default=None, help="largest PATCH timeout, s (36000)")

    eng = sub.add_parser("engine", help="vLLM / SGLang server emulator")
    eng.add_argument("--host", default="127.0.0.1")
    eng.add_argument("--port", type=int, default=None, help="default 8000 (vllm) or 30000 (sglang); 0 = free")
    eng.add_argument("--engine", choices=ENGINES, default="vllm")
    eng.add_argument("--kv-name", choices=KV_NAMES, default="new")
    eng.add_argument("--dp", type=int, default=1, help="data-parallel engines behind one /metrics")
    eng.add_argument("--tp", type=int, default=1, help="SGLang TP size (series repeat with --all-schedulers)")
    eng.add_argument("--all-schedulers", action="store_true", help="SGLang: one series per TP rank")
    eng.add_argument("--sglang-prefix", choices=tuple(SGLANG_PREFIXES), default="colon")
    eng.add_argument("--multiprocess", action="store_true", help="vLLM multiprocess exposition (no _created)")
    eng.add_argument("--speed", default="fast", help="fast | slow | FLOAT (bigger is faster; fast = 1.0)")
    eng.add_argument("--model", default="meta-llama/Llama-3.1-8B-Instruct")
    eng.add_argument("--max-running", type=int, default=8)
    eng.add_argument("--kv-capacity", type=int, default=8192, help="KV pool per engine, tokens")
    eng.add_argument("--api-key-env", default=None, help="env var with a Bearer API key required on /metrics, /v1")
    eng.add_argument("--basic-user", default=None, help="also accept Basic auth with this user ...")
    eng.add_argument("--basic-password-env", default=None, help="... and the password in this env var")
    return parser


def _env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise SystemExit(f"error: environment variable {name} is not set")
    return value


def _parse_pool(text: str) -> dict[str, object]:
    name, _, members = text.partition("=")
    parts = name.strip("/").split("/")
    partition, pool = (parts[0], parts[-1]) if len(parts) > 1 else ("Common", parts[0])
    return {
        "name": pool,
        "partition": partition,
        "members": [{"name": m.strip()} for m in members.split(",") if m.strip()],
    }


def f5_state_from_args(args: argparse.Namespace) -> F5State:
    state = F5State.load(args.config) if args.config else F5State()
    if args.user or args.password_env:
        state.set_password(args.user or "admin", _env(args.password_env) if args.password_env else "admin")
    if args.token_timeout is not None:
        state.token_timeout = args.token_timeout
    if args.max_token_timeout is not None:
        state.max_token_timeout = args.max_token_timeout
    for text in args.pool:
        state.put_pool(pool_from_config(_parse_pool(text)))
    return state


def engine_spec_from_args(args: argparse.Namespace) -> EngineSpec:
    basic = None
    if args.basic_user:
        basic = (args.basic_user, _env(args.basic_password_env) if args.basic_password_env else "")
    return EngineSpec(
        engine=args.engine,
        model=args.model,
        kv_name=args.kv_name,
        dp=args.dp,
        tp=args.tp,
        all_schedulers=args.all_schedulers,
        sglang_prefix=args.sglang_prefix,
        multiprocess=args.multiprocess,
        speed=args.speed,
        max_running=args.max_running,
        kv_capacity=args.kv_capacity,
        basic_auth=basic,
        api_key=_env(args.api_key_env) if args.api_key_env else None,
    )


async def _serve_until_signal(start: Callable[[], Awaitable[tuple[web.AppRunner, str]]]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner, banner = await start()
    print(banner, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


async def _run(args: argparse.Namespace) -> int:
    if args.command == "f5":
        state = f5_state_from_args(args)

        async def start_f5() -> tuple[web.AppRunner, str]:
            runner, cert = await serve_f5(args.host, args.port, state, tls=not args.no_tls)
            scheme = "http" if args.no_tls else "https"
            where = f"f5 emulator listening on {scheme}://{_hostport(args.host, bound_port(runner))}"
            return runner, where + (f" cert={cert}" if cert else "")

        return await _serve_until_signal(start_f5)

    spec = engine_spec_from_args(args)
    port = args.port if args.port is not None else (30000 if spec.engine == "sglang" else 8000)

    async def start_engine() -> tuple[web.AppRunner, str]:
        runner = await serve_engine(args.host, port, spec)
        return runner, (
            f"{spec.engine} engine emulator listening on "
            f"http://{_hostport(args.host, bound_port(runner))} model={spec.model} dp={spec.dp}"
        )

    return await _serve_until_signal(start_engine)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return asyncio.run(_run(args))
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:  # bad option values or config file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # port in use, unreadable config, ...
        print(f"error: {exc}", file=sys.stderr)
        return 1
