"""Helpers for the config tests: a minimal valid config, and ways to build a broken one and read its errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from llmsched.shared.config import parse_config
from llmsched.shared.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "scheduler-config.yaml"
ENV = {"F5_PASSWORD": "f5-secret-value", "METRIC_PWD": "metric-secret-value"}


def minimal() -> dict[str, Any]:
    return {
        "f5": {"host": "bigip.example", "password_env": "F5_PASSWORD"},
        "pools": [{"name": "p1", "engine_type": "vllm"}],
    }


def errors_of(data: Any, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, ENV if env is None else env)
    return info.value.errors


def with_(path: str, value: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """minimal() with `value` set at dotted `path` (`pools.0.metrics.timeout`)."""
    data = copy.deepcopy(data or minimal())
    node: Any = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[parts[-1]] = value
    return data


def assert_error(data: Any, path: str, gist: str, env: dict[str, str] | None = None) -> None:
    errors = errors_of(data, env)
    assert path in errors, errors
    assert any(gist in msg for msg in errors[path]), errors[path]
