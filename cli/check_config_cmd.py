"""`llmsched check-config FILE`: validate a config file; print the effective config (secrets masked) or the errors."""

from __future__ import annotations

import argparse

HELP = "validate a scheduler-config.yaml and print the effective config, or every error with its key path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="path of the scheduler-config.yaml to check")


def run(args: argparse.Namespace) -> int:
    from llmsched.cli import check_config

    return check_config.run(args.file)
