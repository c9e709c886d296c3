"""marshmallow schemas for `scheduler-config.yaml`: the one place where keys, types, ranges and defaults are checked.

Each schema validates one section and its `post_load` builds the frozen dataclass of `llmsched.shared.config_model`;
a key absent from the file takes the dataclass default (which is the original's *parse default*), so defaults
live in one place. Unknown keys raise ("unknown key"); the only tolerated extras are the ones the original's
own shipped files contain (`modes[].power`, `pools[].members`) and the not-yet-supported XInference
`model_APIkey` block — they are loaded, dropped and reported by `llmsched.shared.config.collect_warnings`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, post_load, validates_schema

from llmsched.shared.config_fields import (
    Bool,
    Choice,
    Forbidden,
    Int,
    LegacyBool,
    ListOf,
    Num,
    Section,
    Str,
    at_least,
    env_problem,
    env_value,
    existing_file,
    greater_than,
    non_empty,
    port,
    resolve_path,
    starts_with_slash,
)
from llmsched.shared.config_model import (
    DEFAULT_MODE,
    ENGINE_TYPES,
    MODE_NAMES,
    Config,
    EngineVariant,
    F5Config,
    FallbackConfig,
    GlobalConfig,
    MetricsConfig,
    ModeConfig,
    PoolConfig,
    SchedulerConfig,
    TelemetryConfig,
)
from llmsched.shared.config_redis import RedisSchema
from llmsched.shared.secrets import Secret

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "CRIT": "CRITICAL"}
VARIANT_BASES = ("vllm", "sglang")
METRIC_KEYS = ("waiting_queue", "cache_usage", "running_req")


def client_network(text: str) -> None:
    """An IP address or CIDR (`10.1.10.5`, `10.1.10.0/24`, `2001:db8::/64`)."""
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValidationError("must be an IP address or CIDR (e.g. 10.1.10.5 or 10.1.10.0/24)") from None


class GlobalSchema(Section):
    interval = Num(validate=greater_than(0))
    api_port = Int(validate=port)
    api_host = Str(validate=non_empty)
    log_level = Choice(LOG_LEVELS, what="log level", aliases=LOG_LEVEL_ALIASES)
    log_debug = LegacyBool()
    log_format = Choice(("text", "json"), what="log format")
    admin_token_env = Str(allow_none=True, validate=non_empty)
    # BIG-IP's self IPs: the only sources allowed to ask for decisions and read pool data (llmsched.api.clients).
    api_allowed_clients = ListOf(Str(validate=client_network), allow_none=True)

    @validates_schema(skip_on_field_errors=False)
    def check_admin_token(self, data: dict[str, Any], **_: Any) -> None:
        name = data.get("admin_token_env")
        if name and (problem := env_problem(name)):
            raise ValidationError({"admin_token_env": [problem]})

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> GlobalConfig:
        if data.get("admin_token_env"):
            data["admin_token"] = Secret(env_value(data["admin_token_env"]) or "")
        if data.get("api_allowed_clients") is not None:
            data["api_allowed_clients"] = tuple(item.strip() for item in data["api_allowed_clients"])
        log_debug = data.pop("log_debug", None)
        if "log_level" not in data and log_debug is not None:  # legacy switch, only without log_level
            data["log_level"] = "DEBUG" if log_debug else "INFO"
        return GlobalConfig(**data)


class F5Schema(Section):
    host = Str(
        required=True, validate=non_empty, error_messages={"required": "required (the BIG-IP management address)"}
    )
    port = Int(validate=port)
    username = Str(validate=non_empty)
    password_env = Str(
        required=True,
        validate=non_empty,
        error_messages={"required": "required (name of the environment variable that holds the BIG-IP password)"},
    )
    password = Forbidden(
        "a password must not be written in the configuration file; set f5.password_env "
        "to the name of an environment variable that holds it"
    )
    verify = Bool()
    ca_bundle = Str(allow_none=True, validate=existing_file)
    login_provider = Str(validate=non_empty)
    auth = Choice(("token", "basic"), what="auth method")
    timeout = Num(validate=greater_than(0))

    @validates_schema(skip_on_field_errors=False)
    def check_password(self, data: dict[str, Any], **_: Any) -> None:
        name = data.get("password_env")
        if name and (problem := env_problem(name)):
            raise ValidationError({"password_env": [problem]})

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> F5Config:
        data["password"] = Secret(env_value(data["password_env"]) or "")
        if data.get("ca_bundle"):
            data["ca_bundle"] = str(resolve_path(data["ca_bundle"]))
        return F5Config(**data)


class SchedulerSchema(Section):
    pool_fetch_interval = Num(validate=greater_than(0))
    metrics_fetch_interval = Int(validate=greater_than(0))
    stale_after = Num(allow_none=True, validate=greater_than(0))
    scrape_concurrency = Int(validate=at_least(1))
    herd_control = Bool()
    ha_lease_ttl = Num(validate=at_least(0.3))

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> SchedulerConfig:
        return SchedulerConfig(**data)


def port_or_off(value: int | None) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise ValidationError("must be a port number between 1 and 65535, or 0 for no endpoint")


class TelemetrySchema(Section):
    host = Str(validate=non_empty)
    poller_port = Int(validate=port_or_off)
    scraper_port = Int(validate=port_or_off)
    scorer_port = Int(validate=port_or_off)

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> TelemetryConfig:
        return TelemetryConfig(**data)


class ModeSchema(Section):
    name = Choice(MODE_NAMES, what="mode")
    w_a = Num(validate=at_least(0))
    w_b = Num(validate=at_least(0))
    w_g = Num(validate=at_least(0))
    transition_point = Num(validate=greater_than(0))
    steepness = Num(validate=greater_than(0))
    power = fields.Raw(allow_none=True)  # in the original's explanation file, never parsed: warned, dropped

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> ModeConfig:
        data.pop("power", None)
        return ModeConfig(**data)


class FallbackSchema(Section):
    pool_fallback = Bool()
    member_running_req_threshold = Num(allow_none=True, validate=at_least(0))
    member_waiting_queue_threshold = Num(allow_none=True, validate=at_least(0))

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> FallbackConfig:
        return FallbackConfig(**data)


class MetricsSchema(Section):
    schema_ = Choice(("http", "https"), what="scheme", data_key="schema")
    port = Int(allow_none=True, validate=port)
    path = Str(validate=starts_with_slash)
    timeout = Num(validate=greater_than(0))
    api_key = Str(allow_none=True, data_key="APIkey")
    metric_user = Str(allow_none=True)
    metric_pwd_env = Str(allow_none=True, validate=non_empty)
    verify = Bool()
    ca_bundle = Str(allow_none=True, validate=existing_file)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def check_password(self, data: dict[str, Any], original_data: Any, **_: Any) -> None:
        # Basic auth needs both halves; a user without a password would silently send an empty one.
        if not data.get("metric_user"):
            return
        name = data.get("metric_pwd_env")
        if name is None and (original_data or {}).get("metric_pwd_env") is None:
            raise ValidationError(
                {
                    "metric_pwd_env": [
                        "required when metric_user is set (name of the environment variable that holds the password)"
                    ]
                }
            )
        if name and (problem := env_problem(name)):
            raise ValidationError({"metric_pwd_env": [problem]})

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> MetricsConfig:
        data["schema"] = data.pop("schema_", "http")
        data["api_key"] = Secret(data["api_key"]) if data.get("api_key") else None
        data["metric_user"] = data.get("metric_user") or None
        if data["metric_user"] and data.get("metric_pwd_env"):
            data["metric_pwd"] = Secret(env_value(data["metric_pwd_env"]) or "")
        if data.get("ca_bundle"):
            data["ca_bundle"] = str(resolve_path(data["ca_bundle"]))
        return MetricsConfig(**data)


class ModelApiKeySchema(Section):
    """The original's XInference API-key sync block: key names checked (typos still caught), contents ignored."""

    path = fields.Raw(allow_none=True)
    f5datagroup = fields.Raw(allow_none=True)
    timeout = fields.Raw(allow_none=True)
    api_key_sync_interval = fields.Raw(allow_none=True)
    APIkey = fields.Raw(allow_none=True)
    apikey_user = fields.Raw(allow_none=True)
    apikey_pwd_env = fields.Raw(allow_none=True)
    failure_mode = fields.Raw(allow_none=True)
    max_failures_threshold = fields.Raw(allow_none=True)
    failure_timeout_hours = fields.Raw(allow_none=True)


class PoolSchema(Section):
    SECTIONS = ("fallback", "metrics")
    name = Str(required=True, validate=non_empty)
    partition = Str(validate=non_empty)
    engine_type = Choice(
        ENGINE_TYPES,
        what="engine type",
        required=True,
        extra={"xinference": "xinference is not supported yet (its load cannot be scored)"},
        error_messages={"required": f"required; one of {', '.join(ENGINE_TYPES)}"},
    )
    fallback = fields.Nested(FallbackSchema)
    metrics = fields.Nested(MetricsSchema)
    model_APIkey = fields.Nested(ModelApiKeySchema, allow_none=True)  # warned and dropped
    members = fields.Raw(allow_none=True)  # in the original's own files; members come from BIG-IP: warned, dropped

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> PoolConfig:
        data.pop("model_APIkey", None)
        data.pop("members", None)
        return PoolConfig(**data)


class PoolList(ListOf):
    """`pools`: at least one entry, and each (name, partition) only once."""

    default_error_messages = {"required": "required (at least one pool)", "null": "at least one pool is required"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any | None]:
        if isinstance(value, list) and not value:
            raise ValidationError("at least one pool is required")
        errors: dict[int, Any] = {}
        try:
            result = super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            if not isinstance(exc.messages, dict):
                raise
            errors, result = dict(exc.messages), []
        seen: set[tuple[str, str]] = set()
        for index, raw in enumerate(value):
            if not (isinstance(raw, Mapping) and isinstance(raw.get("name"), str)):
                continue
            partition = raw.get("partition")
            key = (raw["name"], partition if isinstance(partition, str) else "Common")
            if key in seen:
                entry = errors.setdefault(index, {})
                entry.setdefault("_schema", []).append(f"duplicate pool {key[0]}:{key[1]}")
            seen.add(key)
        if errors:
            raise ValidationError(errors)
        return result


class VariantSchema(Section):
    waiting_queue = Str(allow_none=True, validate=non_empty)
    cache_usage = Str(allow_none=True, validate=non_empty)
    running_req = Str(allow_none=True, validate=non_empty)


def variant_is_empty(body: Any) -> bool:
    """A variant without any metric name: the original skipped it with a warning, and so do we."""
    return body is None or (isinstance(body, Mapping) and set(body) <= set(METRIC_KEYS) and not any(body.values()))


class VariantMap(fields.Field):
    """`engines_metrics_keys`: variant name -> metric names; a name must start with vllm or sglang."""

    default_error_messages = {
        "invalid": "must be a mapping of variant name to metric names",
        "null": "must not be null",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[EngineVariant, ...]:
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        variants: list[EngineVariant] = []
        errors: dict[str, Any] = {}
        for name, body in value.items():
            if not isinstance(name, str) or not name.lower().startswith(VARIANT_BASES):
                errors[str(name)] = [
                    "variant name must start with vllm or sglang (xinference variants are not supported)"
                ]
                continue
            if variant_is_empty(body):
                continue
            try:
                variants.append(EngineVariant(name=name, **VariantSchema().load(body)))
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return tuple(variants)


class ConfigSchema(Section):
    SECTIONS = ("global", "f5", "redis", "scheduler", "telemetry")
    global_ = fields.Nested(GlobalSchema, data_key="global")
    f5 = fields.Nested(F5Schema)
    redis = fields.Nested(RedisSchema)
    scheduler = fields.Nested(SchedulerSchema)
    modes = ListOf(
        fields.Nested(ModeSchema), error_messages={"null": "must be a list (write `modes: []` for no scoring mode)"}
    )
    pools = PoolList(fields.Nested(PoolSchema), required=True)
    engines_metrics_keys = VariantMap(allow_none=True)
    telemetry = fields.Nested(TelemetrySchema)

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> Config:
        # `source` and `warnings` are filled in by shared/config.py, which knows the file and reads the raw mapping.
        modes = tuple(data["modes"]) if "modes" in data else (ModeConfig(name=DEFAULT_MODE),)
        return Config(
            global_=data["global_"],
            f5=data["f5"],
            redis=data["redis"],
            scheduler=data["scheduler"],
            modes=modes,
            pools=tuple(data["pools"]),
            engines_metrics_keys=data.get("engines_metrics_keys") or (),
            telemetry=data["telemetry"],
        )
