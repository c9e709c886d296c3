"""`llmsched emulate f5|engine ...`: run the BIG-IP or the inference-engine emulator (see docs/emulators.md).

Everything after `emulate` goes to `llmsched.emulators.cli.main`, so `llmsched emulate engine --help` shows the
emulator's own options.
"""

from __future__ import annotations

import argparse

HELP = "run an emulated BIG-IP (f5) or vLLM/SGLang server (engine), for tests and demos"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "argv",
        nargs=argparse.REMAINDER,
        metavar="f5|engine ...",
        help="the emulator and its options, e.g. `engine --engine sglang --port 0`",
    )


def run(args: argparse.Namespace) -> int:
    from llmsched.emulators.cli import main

    return main(list(args.argv))
