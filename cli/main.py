"""The `llmsched` command: one entry point, one subcommand per process or tool.

Each subcommand is a module of this package with `HELP`, `add_arguments(parser)` and `run(args) -> int`; the
modules import their heavy dependencies inside `run`, so `llmsched --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from llmsched import __version__

# (command, module) in the order `llmsched --help` lists them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("check-config", "llmsched.cli.check_config"),
    ("api", "llmsched.cli.api"),
    ("seed", "llmsched.cli.seed"),
    ("poller", "llmsched.cli.poller"),
    ("scraper", "llmsched.cli.scraper"),
    ("scorer", "llmsched.cli.scorer"),
    ("up", "llmsched.cli.up"),
    ("status", "llmsched.cli.status"),
    ("demo", "llmsched.cli.demo"),
    ("emulate", "llmsched.cli.emulate"),
    ("bench", "llmsched.cli.bench"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmsched", description="LLM-aware scheduler for F5 BIG-IP pools of vLLM / SGLang servers."
    )
    parser.add_argument("--version", action="version", version=f"llmsched {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
