"""Load, validate and render `scheduler-config.yaml`.

`load_config` reads the file the original reads (same keys, same meaning) and returns the typed, immutable
`Config`. Unlike the original, which silently substituted defaults (an unknown mode became `s1`, a missing
password became "admin", a quoted "false" was truthy), every problem is an error, and all of them are
reported at once as a `ConfigError` keyed by path (`pools[1].engine_type`). Validation itself lives in the
marshmallow schemas of `llmsched.shared.config_schema`; this module handles the file, the error paths, the warnings
and the rendering of the effective configuration (secrets masked).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from llmsched.shared.config_fields import load_context, mask_url
from llmsched.shared.config_model import Config
from llmsched.shared.config_schema import ConfigSchema, variant_is_empty
from llmsched.shared.errors import ConfigError
from llmsched.shared.secrets import MASK, Secret

FILE_KEY = "<file>"  # error path for problems with the file as a whole


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve the YAML file at `path`; `env` (default `os.environ`) supplies the secrets."""
    source = os.fspath(path)
    try:
        # Before reading: an edit landing in between then shows as a newer file at the next check.
        # The inode's change time, which only the kernel sets: a restored backup (`cp -p`, `rsync -t`, a ConfigMap
        # swap) keeps an old modification time but is still the newest file here (docs/reliability.md).
        generation = os.stat(source).st_ctime_ns
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _file_error(f"file not found: {source}", source) from None
    except IsADirectoryError:
        raise _file_error(f"is a directory, not a file: {source}", source) from None
    except PermissionError:
        raise _file_error(f"cannot read {source}: permission denied", source) from None
    except UnicodeDecodeError as exc:
        raise _file_error(f"not UTF-8 text: {exc.reason} at byte {exc.start}", source) from None
    except OSError as exc:
        raise _file_error(f"cannot read {source}: {exc.strerror or exc}", source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise _file_error(f"YAML syntax error{where}: {problem}", source) from None
    except yaml.YAMLError as exc:
        raise _file_error(f"YAML error: {exc}", source) from None
    return replace(parse_config(data, env, source=source), generation=generation)


def parse_config(data: Any, env: Mapping[str, str] | None = None, source: str = "") -> Config:
    """Validate an already-loaded mapping (the result of `yaml.safe_load`) into a `Config`."""
    if data is None:
        raise _file_error("the configuration is empty", source)
    if not isinstance(data, Mapping):
        raise _file_error(
            f"the top level must be a mapping of sections (global, f5, pools, ...), not a {type(data).__name__}", source
        )
    # Relative file paths in the config (ca_bundle) are relative to the config file, not to the CWD.
    base_dir = Path(source).resolve().parent if source else Path.cwd()
    with load_context(os.environ if env is None else env, base_dir):
        try:
            config = ConfigSchema().load(data)
        except ValidationError as exc:
            raise ConfigError(flatten_errors(exc.messages), source) from None
    return replace(config, source=source, warnings=collect_warnings(data))


def _file_error(message: str, source: str) -> ConfigError:
    return ConfigError({FILE_KEY: [message]}, source)


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"pools[2].metrics.timeout": [...]} (`_schema` names the parent)."""
    flat: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, sub in node.items():
                if key == "_schema":
                    walk(sub, path)
                elif isinstance(key, int):  # list index (marshmallow uses ints only for list positions)
                    walk(sub, f"{path}[{key}]")
                else:
                    walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item, path)
        else:
            flat.setdefault(path, []).append(str(node))

    walk(messages, prefix)
    return flat


def collect_warnings(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """Non-fatal findings, each `path: message`, read from the raw mapping because they are about positions and
    keys that the typed Config no longer has (ignored entries)."""
    found: list[str] = []
    section = raw.get("global")
    if isinstance(section, Mapping) and "log_level" in section and "log_debug" in section:
        found.append("global.log_debug: ignored because global.log_level is set")
    modes = raw.get("modes")
    if isinstance(modes, list):
        if not modes:
            found.append("modes: no scoring mode: every decision answers none")
        elif len(modes) > 1:
            found.append(
                f"modes: only modes[0] is used; the {len(modes) - 1} later entries "
                f"(modes[1]..modes[{len(modes) - 1}]) are ignored"
            )
        for i, mode in enumerate(modes):
            if isinstance(mode, Mapping) and "power" in mode:
                found.append(f"modes[{i}].power: not configurable (s1_nonlinear always uses 2.0); ignored")
    pools = raw.get("pools")
    for i, pool in enumerate(pools if isinstance(pools, list) else ()):
        if not isinstance(pool, Mapping):
            continue
        if "members" in pool:
            found.append(f"pools[{i}].members: ignored; pool members are read from BIG-IP")
        if "model_APIkey" in pool:
            found.append(f"pools[{i}].model_APIkey: XInference API-key sync is not supported yet; ignored")
        metrics = pool.get("metrics")
        if isinstance(metrics, Mapping) and metrics.get("metric_pwd_env") and not metrics.get("metric_user"):
            found.append(f"pools[{i}].metrics.metric_pwd_env: ignored because metric_user is not set")
    variants = raw.get("engines_metrics_keys")
    for name, body in variants.items() if isinstance(variants, Mapping) else ():
        if variant_is_empty(body):
            found.append(
                f"engines_metrics_keys.{name}: no metric names (waiting_queue, cache_usage, running_req); ignored"
            )
    return tuple(found)


# ------------------------------------------------------------------------------------------------ rendering
# Resolved secrets are not config keys (they come from the environment): only their variable names are shown.
_HIDDEN = {"password", "sentinel_password", "metric_pwd", "admin_token"}
_YAML_NAMES = {"global_": "global", "api_key": "APIkey"}


def _plain(value: Any) -> Any:
    """A dataclass tree -> plain YAML-able data, with secrets masked and the original's key names."""
    if isinstance(value, Secret):
        return MASK
    if is_dataclass(value):
        return {
            _YAML_NAMES.get(f.name, f.name): _plain(getattr(value, f.name))
            for f in fields(value)
            if f.name not in _HIDDEN
        }
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def render_effective(config: Config) -> str:
    """The effective configuration (defaults filled in) as YAML; secret values never appear."""
    doc = _plain(config)
    doc.pop("source")
    doc.pop("warnings")
    doc.pop("generation")
    redis = doc["redis"]
    redis["url"] = mask_url(str(config.redis.url)) if config.redis.url else None
    redis["sentinels"] = [f"{host}:{port}" for host, port in config.redis.sentinels]
    # engines_metrics_keys is a mapping in the file; `name` becomes the key again, unset metric names dropped.
    doc["engines_metrics_keys"] = {
        v.name: {k: getattr(v, k) for k in ("waiting_queue", "cache_usage", "running_req") if getattr(v, k)}
        for v in config.engines_metrics_keys
    }
    header = f"# effective configuration of {config.source}\n" if config.source else ""
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
