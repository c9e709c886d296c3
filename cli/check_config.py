"""`llmsched check-config FILE`: validate a configuration file and show what llmsched would run with.

On success the effective configuration (defaults filled in, secrets masked) goes to stdout, preceded by the
warnings as YAML comments so the output stays loadable YAML; the exit code is 0. On failure every problem is
printed to stderr as one `path: message` line and the exit code is 1, so a CI job or a pre-deploy hook can
gate on it.
"""

from __future__ import annotations

import sys

from llmsched.shared.config import load_config, render_effective
from llmsched.shared.errors import ConfigError


def run(path: str) -> int:
    """Check `path` against the current environment (secrets are resolved, never printed)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        for key, messages in sorted(exc.errors.items()):
            for message in messages:
                print(f"{key}: {message}", file=sys.stderr)
        return 1
    if config.warnings:
        print(f"# {len(config.warnings)} warning(s):")
        for warning in config.warnings:
            print(f"#   {warning}")
    print(render_effective(config), end="")
    return 0


if __name__ == "__main__":  # convenience: python -m llmsched.cli.check_config FILE
    if len(sys.argv) != 2:
        print("usage: python -m llmsched.cli.check_config FILE", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1]))
