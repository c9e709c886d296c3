"""The `redis` section of `scheduler-config.yaml`: where Redis is, and how to authenticate to it and its Sentinels.

Secrets (passwords, and usernames when wanted) come from the environment variables the `*_env` keys name; the
TLS files may be overridden by `LLMSCHED_REDIS_TLS_{CA,CERT,KEY}` and `LLMSCHED_SENTINEL_TLS_{CA,CERT,KEY}`, so
a deployment can mount certificates where it likes. `REDIS_URL` overrides `redis.url`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, post_load, validates_schema

from llmsched.shared.config_fields import (
    Bool,
    Forbidden,
    ListOf,
    MaskedURL,
    Num,
    Section,
    Sentinel,
    Str,
    check_redis_url,
    env_problem,
    env_value,
    existing_file,
    greater_than,
    non_empty,
    resolve_path,
    url_password,
    valid_namespace,
)
from llmsched.shared.config_model import RedisConfig
from llmsched.shared.secrets import Secret

# Environment variables that override the TLS files of the config (a deployment mounts certificates where it likes).
REDIS_TLS_ENV = {
    f"{side}tls_{part}": f"LLMSCHED_{'SENTINEL' if side else 'REDIS'}_TLS_{part.upper()}"
    for side in ("", "sentinel_")
    for part in ("ca", "cert", "key")
}


class RedisSchema(Section):
    url = Str(allow_none=True, validate=non_empty)
    namespace = Str(validate=valid_namespace)
    socket_timeout = Num(validate=greater_than(0))
    sentinels = ListOf(Sentinel())
    master_name = Str(allow_none=True, validate=non_empty)
    decision_timeout = Num(validate=greater_than(0))
    username = Str(allow_none=True, validate=non_empty)
    username_env = Str(allow_none=True, validate=non_empty)
    password_env = Str(allow_none=True, validate=non_empty)
    password = Forbidden(
        "a password must not be written in the configuration file; set redis.password_env to the name of an "
        "environment variable that holds it"
    )
    tls = Bool()
    tls_ca = Str(allow_none=True, validate=non_empty)
    tls_cert = Str(allow_none=True, validate=non_empty)
    tls_key = Str(allow_none=True, validate=non_empty)
    sentinel_username = Str(allow_none=True, validate=non_empty)
    sentinel_username_env = Str(allow_none=True, validate=non_empty)
    sentinel_password_env = Str(allow_none=True, validate=non_empty)
    sentinel_password = Forbidden(
        "a password must not be written in the configuration file; set redis.sentinel_password_env to the name "
        "of an environment variable that holds it"
    )
    sentinel_tls = Bool()
    sentinel_tls_ca = Str(allow_none=True, validate=non_empty)
    sentinel_tls_cert = Str(allow_none=True, validate=non_empty)
    sentinel_tls_key = Str(allow_none=True, validate=non_empty)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def check(self, data: dict[str, Any], original_data: Any, **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        from_env = env_value("REDIS_URL")
        url = from_env or data.get("url")
        if url and (problem := check_redis_url(url)):
            errors["url"] = [f"REDIS_URL {problem}" if from_env else problem]
        raw = original_data if isinstance(original_data, Mapping) else {}
        if raw.get("sentinels") and not raw.get("master_name"):
            errors["master_name"] = ["required when redis.sentinels is set"]
        if raw.get("master_name") and not raw.get("sentinels"):
            errors["sentinels"] = ["required when redis.master_name is set"]
        if url and data.get("password_env") and url_password(url) is not None:
            errors.setdefault("password_env", []).append(
                "the Redis URL carries a password already; give it in one place only"
            )
        if url and data.get("tls") and not url.lower().startswith("rediss://"):
            errors.setdefault("tls", []).append("with a URL, TLS is its scheme: use rediss:// instead of redis://")
        tls_on = {"": bool(url and url.lower().startswith("rediss://")) or bool(data.get("tls"))}
        tls_on["sentinel_"] = bool(data.get("sentinel_tls"))
        for side, on in tls_on.items():
            _check_credentials(data, side, errors)
            _check_tls_files(data, side, on, errors)
        if not raw.get("sentinels"):
            for key in ("sentinel_username", "sentinel_username_env", "sentinel_password_env", "sentinel_tls"):
                if data.get(key):
                    errors.setdefault(key, []).append("only used with redis.sentinels")
        if errors:
            raise ValidationError(errors)

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> RedisConfig:
        url = env_value("REDIS_URL") or data.get("url")  # the environment wins, as for every deployment knob
        data["url"] = MaskedURL(url) if url else None
        data["sentinels"] = tuple(data.get("sentinels", ()))
        for side in ("", "sentinel_"):
            if name := data.get(f"{side}username_env"):
                data[f"{side}username"] = env_value(name)
            if name := data.get(f"{side}password_env"):
                data[f"{side}password"] = Secret(env_value(name) or "")
            for part in ("ca", "cert", "key"):
                key = f"{side}tls_{part}"
                if path := _tls_file(data, key):
                    data[key] = str(resolve_path(path))
        return RedisConfig(**data)


def _tls_file(data: Mapping[str, Any], key: str) -> str | None:
    """A TLS file of the config, or the environment variable that overrides it."""
    return env_value(REDIS_TLS_ENV[key]) or data.get(key)


def _check_credentials(data: Mapping[str, Any], side: str, errors: dict[str, list[str]]) -> None:
    if data.get(f"{side}username") and data.get(f"{side}username_env"):
        errors.setdefault(f"{side}username_env", []).append(f"set {side}username or {side}username_env, not both")
    for key in (f"{side}username_env", f"{side}password_env"):
        if (name := data.get(key)) and (problem := env_problem(name)):
            errors.setdefault(key, []).append(problem)
    if (data.get(f"{side}username") or data.get(f"{side}username_env")) and not data.get(f"{side}password_env"):
        errors.setdefault(f"{side}password_env", []).append(
            f"required when {side}username is set (name of the environment variable that holds the password)"
        )


def _check_tls_files(data: Mapping[str, Any], side: str, on: bool, errors: dict[str, list[str]]) -> None:
    paths = {part: _tls_file(data, f"{side}tls_{part}") for part in ("ca", "cert", "key")}
    for part, path in paths.items():
        key = f"{side}tls_{part}"
        where = f" (from {REDIS_TLS_ENV[key]})" if env_value(REDIS_TLS_ENV[key]) else ""
        if path and not on:
            switch = "redis.sentinel_tls: true" if side else "a rediss:// URL, or redis.tls: true with sentinels"
            errors.setdefault(key, []).append(f"set{where}, but this connection is not TLS (use {switch})")
        try:
            existing_file(path)
        except ValidationError as exc:
            errors.setdefault(key, []).extend(f"{message}{where}" for message in exc.messages)
    if bool(paths["cert"]) != bool(paths["key"]):
        missing = "key" if paths["cert"] else "cert"
        errors.setdefault(f"{side}tls_{missing}", []).append(
            f"required when {side}tls_{'cert' if missing == 'key' else 'key'} is set (a client certificate needs "
            "its key)"
        )
