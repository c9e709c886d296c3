"""`llmsched check-config FILE`: validate a configuration file and show what llmsched would run with.

On success the effective configuration (defaults filled in, secrets masked) goes to stdout, preceded by the
warnings as YAML comments so the output stays loadable YAML; the exit code is 0. On failure every problem is
printed to stderr as one `path: message` line and the exit code is 1, so a CI job or a pre-deploy hook can
gate on it. Problems with the file as a whole (not found, a directory, empty, YAML syntax) name the file; an
unknown key names the nearest known key of its section when one is close.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import Any

HELP = "validate a scheduler-config.yaml and print the effective config, or every error with its key path"

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="path of the scheduler-config.yaml to check")


def run(args: argparse.Namespace) -> int:
    return check(args.file)


def _section_schema(path: str) -> Any | None:
    """The marshmallow schema of the mapping that holds the last key of `path` ("pools[0].engine" -> PoolSchema)."""
    from marshmallow import fields

    from llmsched.shared.config_schema import ConfigSchema

    schema: Any = ConfigSchema()
    names = [m.group(1) for m in _STEP.finditer(path) if m.group(1) is not None]
    for name in names[:-1]:
        field = next((f for key, f in schema.fields.items() if (f.data_key or key) == name), None)
        while field is not None and not isinstance(field, fields.Nested):
            field = getattr(field, "inner", None)  # a list of sections: step into its item schema
        if field is None:
            return None
        schema = field.schema
    return schema


def nearest_key(path: str) -> str | None:
    """The known key of the same section closest to the unknown last key of `path`, if one is close."""
    schema = _section_schema(path)
    if schema is None:
        return None
    unknown = path.rsplit(".", 1)[-1]
    known = [f.data_key or key for key, f in schema.fields.items()]
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
    return close[0] if close else None


def problems(errors: dict[str, list[str]], source: str) -> list[str]:
    """`path: message` lines; the file's own problems under its path, unknown keys with a suggestion."""
    from llmsched.shared.config import FILE_KEY

    lines = []
    for key, messages in sorted(errors.items()):
        for message in messages:
            if key == FILE_KEY:
                # "file not found: PATH" -> "PATH: file not found": the path leads, once.
                lines.append(f"{source}: {message.removesuffix(f': {source}')}")
                continue
            if message == "unknown key" and (suggestion := nearest_key(key)):
                message = f"unknown key (did you mean {suggestion!r}?)"
            lines.append(f"{key}: {message}")
    return lines


def check(path: str) -> int:
    """Check `path` against the current environment (secrets are resolved, never printed)."""
    from llmsched.shared.config import load_config, render_effective
    from llmsched.shared.errors import ConfigError

    try:
        config = load_config(path)
    except ConfigError as exc:
        for line in problems(exc.errors, path):
            print(line, file=sys.stderr)
        return 1
    if config.warnings:
        print(f"# {len(config.warnings)} warning(s):")
        for warning in config.warnings:
            print(f"#   {warning}")
    print(render_effective(config), end="")
    return 0
