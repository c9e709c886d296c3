"""Reading the deployment files the way Docker reads them, for tests that cannot run a Docker engine.

`load_compose(env)` parses docker-compose.yml (YAML anchors and merge keys included) and applies compose's
variable interpolation (`${X}`, `${X:-default}`, `${X-default}`, `${X:?error}`, `$$`) with `env`;
`raw_compose()` keeps the `${...}` text. `dockerfile()` gives the Dockerfile's instructions with continuation
lines joined and comment lines dropped, as the Dockerfile parser does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
CONFIG_TARGET = "/etc/llmsched/scheduler-config.yaml"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    """A `${X:?message}` variable that is unset: compose refuses to start."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset else value
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return value
        return value or ""

    return _VARIABLE.sub(replace, text)


def _resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    return _resolve(raw_compose(), env)


def llmsched_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services run from the llmsched image (built from deploy/Dockerfile), by name."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def config_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services whose command loads a scheduler config with --config."""
    return {
        name: svc
        for name, svc in llmsched_services(compose).items()
        if "--config" in svc["command"] and svc["command"][0] != "emulate"
    }


def option(command: list[str], flag: str) -> str | None:
    """The value following `flag` in an argv list, or None."""
    return command[command.index(flag) + 1] if flag in command else None


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the final Dockerfile text."""
    lines = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
    joined: list[str] = []
    buffer = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1]
            continue
        buffer += line
        if buffer.strip():
            joined.append(buffer.strip())
        buffer = ""
    out = []
    for statement in joined:
        instruction, _, args = statement.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def dockerfile_json(instruction: str) -> list[str]:
    """The exec-form (JSON array) arguments of the LAST `instruction` in the runtime stage."""
    args = [a for i, a in dockerfile() if i == instruction][-1]
    return json.loads(args)


def healthcheck_command() -> list[str]:
    args = [a for i, a in dockerfile() if i == "HEALTHCHECK"][-1]
    return json.loads(args[args.index("CMD") + len("CMD") :].strip())


def env_names_in_config(path: Path) -> set[str]:
    """Every environment variable a config file names through a `*_env` key (f5.password_env, ...)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
                    names.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return names
