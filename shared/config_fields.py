"""Building blocks of the configuration schemas: strict marshmallow fields, validators and the load context.

The original coerced (or failed to coerce) values silently: the string ``"false"`` was a truthy
``pool_fallback``, ``timeout: 0.5`` became 0 (no timeout). These fields accept only the YAML type that was
meant, so such mistakes become errors with a path. All messages are short lower-case phrases because
`llmsched.shared.config` prints them as ``path: message``.

The environment (for ``*_env`` secrets and ``REDIS_URL``) and the directory that relative file paths are
resolved against are not part of the YAML; nested schemas reach them through a context variable set by
`load_context`, so one `Schema.load` call sees one consistent environment.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from marshmallow import Schema, ValidationError, fields, missing, pre_load

from llmsched.shared.secrets import MASK


# --------------------------------------------------------------------------- load context
@dataclass(frozen=True)
class LoadContext:
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    base_dir: Path = field(default_factory=Path.cwd)


_CONTEXT: ContextVar[LoadContext | None] = ContextVar("llmsched_config_context", default=None)


@contextmanager
def load_context(env: Mapping[str, str], base_dir: Path) -> Iterator[LoadContext]:
    """Make `env` and `base_dir` visible to every schema loaded inside the `with` block."""
    ctx = LoadContext(env=env, base_dir=base_dir)
    token = _CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _CONTEXT.reset(token)


def current_context() -> LoadContext:
    # A schema used outside `load_context` (e.g. in an ad-hoc test) falls back to the process environment.
    return _CONTEXT.get() or LoadContext()


def env_value(name: str) -> str | None:
    """The non-empty value of environment variable `name`, else None (empty counts as unset: no blank passwords)."""
    value = current_context().env.get(name)
    return value or None


def env_problem(name: str) -> str | None:
    """Why environment variable `name` cannot supply a secret, or None when it can."""
    if env_value(name) is not None:
        return None
    state = "is empty" if name in current_context().env else "is not set"
    return f"environment variable {name} {state}"


# --------------------------------------------------------------------------- section base
class Section(Schema):
    """Base of every schema: our messages, unknown keys rejected, null/absent sub-sections meaning "all defaults"."""

    error_messages = {"unknown": "unknown key", "type": "must be a mapping"}
    SECTIONS: ClassVar[tuple[str, ...]] = ()

    @pre_load
    def _fill_sections(self, data: Any, **_: Any) -> Any:
        # marshmallow does not run a nested schema for an absent key, and a section whose keys are all
        # commented out is null in YAML: both become {} so the nested schema applies its defaults and
        # env-dependent checks (REDIS_URL, password_env) still run.
        if not isinstance(data, Mapping) or not self.SECTIONS:
            return data
        data = dict(data)
        for key in self.SECTIONS:
            if data.get(key) is None:
                data[key] = {}
        return data


# --------------------------------------------------------------------------- strict fields
_COMMON_MESSAGES = {"required": "required", "null": "must not be null", "validator_failed": "invalid value"}


class Str(fields.Field):
    """A YAML string, nothing else (a number where a name is expected is a typo or a missing quote)."""

    default_error_messages = {**_COMMON_MESSAGES, "invalid": "must be a string"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return value


class Bool(fields.Field):
    """Only YAML `true`/`false`: a quoted "false" is truthy in Python, which is exactly the original's bug."""

    default_error_messages = {**_COMMON_MESSAGES, "invalid": "must be a boolean (true or false, unquoted)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid")


class Int(fields.Field):
    """A YAML integer (bool is an int subclass in Python and is rejected on purpose)."""

    default_error_messages = {**_COMMON_MESSAGES, "invalid": "must be an integer"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class Num(fields.Field):
    """A finite YAML int or float, returned as float (`timeout: 0.5` stays 0.5 s, unlike the original's int())."""

    default_error_messages = {**_COMMON_MESSAGES, "invalid": "must be a number", "finite": "must be a finite number"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        if not math.isfinite(value):
            raise self.make_error("finite")
        return float(value)


class Choice(Str):
    """A case-insensitive string from a fixed set, returned as spelled in `choices` (`VLLM` -> `vllm`)."""

    def __init__(
        self,
        choices: tuple[str, ...],
        *,
        what: str = "value",
        extra: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.choices = choices
        self.what = what  # "unknown <what> 'x'" in the message
        self.canonical = {c.lower(): c for c in choices}
        self.canonical.update({k.lower(): v for k, v in (aliases or {}).items()})  # e.g. WARN -> WARNING
        self.extra = {k.lower(): v for k, v in (extra or {}).items()}  # value -> specific reason

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        key = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if key in self.canonical:
            return self.canonical[key]
        reason = self.extra.get(key, f"unknown {self.what} {value!r}")
        raise ValidationError(f"{reason}; must be one of {', '.join(self.choices)}")


class LegacyBool(fields.Field):
    """The original's legacy `log_debug`: a YAML boolean or a documented string (true/yes/1/on, false/no/0/off)."""

    TRUE = frozenset({"true", "yes", "1", "on"})
    FALSE = frozenset({"false", "no", "0", "off"})
    default_error_messages = {**_COMMON_MESSAGES, "invalid": "must be a boolean (true/false, yes/no, on/off, 1/0)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise self.make_error("invalid")


class Forbidden(fields.Field):
    """A key that must not appear at all (e.g. a literal `f5.password`): any value, even null, is an error."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        if value is missing:
            return missing
        raise ValidationError(self.message)


class ListOf(fields.List):
    default_error_messages = {**_COMMON_MESSAGES, "invalid": "must be a list"}


class Sentinel(fields.Field):
    """`"host:port"` -> (host, port); `[v6addr]:port` is accepted too."""

    default_error_messages = {**_COMMON_MESSAGES, "invalid": "must be a string", "format": 'must be "host:port"'}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, int]:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        host, sep, number = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not number.isdigit():
            raise self.make_error("format")
        port(int(number))
        return host, int(number)


# --------------------------------------------------------------------------- validators
Validator = Callable[[Any], None]


def greater_than(limit: float) -> Validator:
    def check(value: float) -> None:
        if value is not None and not value > limit:
            raise ValidationError(f"must be greater than {limit:g}")

    return check


def at_least(limit: float) -> Validator:
    def check(value: float) -> None:
        if value is not None and value < limit:
            raise ValidationError(f"must be >= {limit:g}")

    return check


def port(value: int | None) -> None:
    if value is not None and not 1 <= value <= 65535:
        raise ValidationError("must be a port number between 1 and 65535")


def non_empty(value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValidationError("must not be empty")


def starts_with_slash(value: str) -> None:
    if not value.startswith("/"):
        raise ValidationError(f"must start with '/' (got {value!r})")


NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.-]+")


def valid_namespace(value: str) -> None:
    # The namespace prefixes every Redis key; keep it to characters that need no quoting anywhere.
    if not NAMESPACE_RE.fullmatch(value):
        raise ValidationError("must contain only letters, digits, '_', '.' and '-'")


def existing_file(value: str | None) -> None:
    """Relative paths are resolved against the config file's directory, so the check does not depend on the CWD."""
    if value is None:
        return
    path = resolve_path(value)
    if not path.exists():
        raise ValidationError(f"file not found: {path}")
    if not path.is_file():
        raise ValidationError(f"not a file: {path}")


def resolve_path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (current_context().base_dir / path).resolve()


# --------------------------------------------------------------------------- redis URLs (they may hold a password)
REDIS_SCHEMES = ("redis", "rediss", "unix")


def mask_url(url: str) -> str:
    """`url` with any password replaced by the mask, for messages and rendering: the `user:password@` part and the
    `password=` query parameter (redis-py takes the password from either)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}")
    if parts.query:
        query = [(k, MASK if k.lower() == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def url_password(url: str) -> str | None:
    """The password a Redis URL carries (in its user info or its `password=` parameter), else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    query = dict(parse_qsl(parts.query))
    return query.get("password") or parts.password


class MaskedURL(str):
    """A plain `str` for every use (redis.from_url), whose repr hides the password, so repr(Config) is safe to log."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url(str(self)))


def check_redis_url(url: str) -> str | None:
    """An error message for a URL Redis clients cannot use, or None."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        return f"must start with redis://, rediss:// or unix:// (got {mask_url(url)!r})"
    return None
