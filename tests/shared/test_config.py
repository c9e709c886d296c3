"""Tests of shared/config.py: the example, file errors, global / scheduler / f5 / redis keys, secrets, rendering."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmsched.shared.config import load_config, parse_config, render_effective
from llmsched.shared.config_model import ModeConfig
from llmsched.shared.errors import ConfigError
from llmsched.shared.secrets import MASK

from tests.shared.config_cases import ENV, EXAMPLE, assert_error, errors_of, minimal, with_


# ----------------------------------------------------------------------------------------- the example
def test_example_file_every_value() -> None:
    c = load_config(EXAMPLE, ENV)
    assert c.source == str(EXAMPLE)
    assert c.warnings == ()
    g = c.global_
    assert (g.interval, g.api_host, g.api_port, g.log_level, g.log_format) == (5, "0.0.0.0", 8080, "INFO", "text")
    f5 = c.f5
    assert (f5.host, f5.port, f5.username, f5.password_env) == ("127.0.0.1", 8443, "admin", "F5_PASSWORD")
    assert f5.password.reveal() == "f5-secret-value"
    assert (f5.verify, f5.ca_bundle, f5.login_provider, f5.auth, f5.timeout) == (True, None, "tmos", "token", 10.0)
    assert c.redis.url is None and c.redis.namespace == "llmsched" and c.redis.socket_timeout == 0.05
    assert c.redis.sentinels == () and c.redis.master_name is None
    s = c.scheduler
    assert (s.pool_fetch_interval, s.metrics_fetch_interval) == (10, 10000)
    assert (s.stale_after, s.scrape_concurrency) == (None, 64)
    assert c.modes == (ModeConfig(name="s1_enhanced", w_a=0.2, w_b=0.6),)
    assert c.mode == c.modes[0]
    p1, p2 = c.pools
    assert (p1.name, p1.partition, p1.engine_type) == ("example_pool1", "Common", "vllm")
    assert p1.key == "example_pool1:Common"
    assert p1.fallback.pool_fallback is False
    assert p1.fallback.member_running_req_threshold == 100.0
    assert p1.fallback.member_waiting_queue_threshold == 100.0
    m = p1.metrics
    assert (m.schema, m.port, m.path, m.timeout) == ("http", None, "/metrics", 4.0)
    assert m.api_key.reveal() == "abcdefdfdsfds"
    assert (m.metric_user, m.metric_pwd_env) == ("user1", "METRIC_PWD")
    assert m.metric_pwd.reveal() == "metric-secret-value"
    assert (m.verify, m.ca_bundle) == (True, None)
    assert (p2.name, p2.partition, p2.engine_type) == ("example_pool2", "Common", "sglang")
    assert p2.fallback.pool_fallback is True
    assert p2.fallback.member_running_req_threshold is None and p2.fallback.member_waiting_queue_threshold is None
    assert p2.metrics.api_key is None and p2.metrics.metric_pwd is None
    (v,) = c.engines_metrics_keys
    assert (v.name, v.waiting_queue, v.cache_usage, v.running_req) == (
        "vllm_mindie",
        "num_requests_waiting",
        "npu_cache_usage_perc",
        "num_requests_running",
    )
    assert v.base_engine == "vllm"


def test_minimal_config_takes_parse_defaults() -> None:
    c = parse_config(minimal(), ENV)
    assert c.global_.interval == 60 and c.global_.api_port == 8080 and c.global_.log_level == "INFO"
    assert c.f5.port == 443 and c.f5.username == "admin"
    assert c.scheduler.metrics_fetch_interval == 5000 and c.scheduler.pool_fetch_interval == 10
    assert c.modes == (ModeConfig(name="saturation"),)  # no `modes` key: llmsched's default mode
    p = c.pools[0]
    assert p.partition == "Common" and p.fallback.pool_fallback is False
    assert (p.metrics.schema, p.metrics.path, p.metrics.timeout, p.metrics.port) == ("http", "/metrics", 3.0, None)
    assert c.engines_metrics_keys == ()


def test_parse_config_does_not_mutate_input() -> None:
    data = minimal()
    before = copy.deepcopy(data)
    parse_config(data, ENV)
    assert data == before


# ----------------------------------------------------------------------------------------- file errors
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", ENV)
    assert "file not found" in info.value.errors["<file>"][0]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, ENV)
    assert "directory" in info.value.errors["<file>"][0]


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("f5:\n  host: [unclosed\npools: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, ENV)
    (msg,) = info.value.errors["<file>"]
    assert "YAML syntax error at line" in msg and "column" in msg


@pytest.mark.parametrize(
    "text, gist",
    [("", "empty"), ("- a\n- b\n", "top level must be a mapping"), ("just a string\n", "top level must be a mapping")],
)
def test_top_level_not_a_mapping(tmp_path: Path, text: str, gist: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f, ENV)
    assert gist in info.value.errors["<file>"][0]


def test_all_errors_reported_at_once() -> None:
    data = with_("pools.0.engine_type", "nope", with_("scheduler.metrics_fetch_interval", 0))
    errors = errors_of(data, {})
    assert {"pools[0].engine_type", "scheduler.metrics_fetch_interval", "f5.password_env"} <= set(errors)


# ----------------------------------------------------------------------------------------- global / scheduler
@pytest.mark.parametrize(
    "given, expected",
    [
        ("warn", "WARNING"),
        ("WARN", "WARNING"),
        ("FATAL", "CRITICAL"),
        ("crit", "CRITICAL"),
        ("debug", "DEBUG"),
        ("Error", "ERROR"),
    ],
)
def test_log_level_aliases_normalised(given: str, expected: str) -> None:
    assert parse_config(with_("global.log_level", given), ENV).global_.log_level == expected


def test_unknown_log_level_is_an_error() -> None:
    assert_error(with_("global.log_level", "VERBOSE"), "global.log_level", "unknown log level")


@pytest.mark.parametrize("value, level", [(True, "DEBUG"), (False, "INFO"), ("yes", "DEBUG"), ("off", "INFO")])
def test_log_debug_used_only_without_log_level(value: Any, level: str) -> None:
    assert parse_config(with_("global.log_debug", value), ENV).global_.log_level == level
    c = parse_config(with_("global.log_debug", value, with_("global.log_level", "ERROR")), ENV)
    assert c.global_.log_level == "ERROR"
    assert "global.log_debug: ignored because global.log_level is set" in c.warnings


def test_log_format() -> None:
    assert parse_config(with_("global.log_format", "JSON"), ENV).global_.log_format == "json"
    assert_error(with_("global.log_format", "xml"), "global.log_format", "must be one of text, json")


@pytest.mark.parametrize(
    "path",
    [
        "global.interval",
        "scheduler.pool_fetch_interval",
        "scheduler.metrics_fetch_interval",
        "scheduler.stale_after",
        "f5.timeout",
        "redis.socket_timeout",
    ],
)
@pytest.mark.parametrize("value", [0, -5])
def test_intervals_must_be_positive(path: str, value: int) -> None:
    assert_error(with_(path, value), path, "must be greater than 0")


@pytest.mark.parametrize("path", ["global.api_port", "f5.port", "pools.0.metrics.port"])
@pytest.mark.parametrize("value", [0, 65536])
def test_ports_in_range(path: str, value: int) -> None:
    shown = path.replace("pools.0", "pools[0]")
    assert_error(with_(path, value), shown, "between 1 and 65535")


def test_port_must_be_an_integer() -> None:
    assert_error(with_("global.api_port", "8080"), "global.api_port", "must be an integer")
    assert_error(with_("f5.port", True), "f5.port", "must be an integer")


def test_scheduler_extensions() -> None:
    c = parse_config(with_("scheduler.stale_after", 7.5, with_("scheduler.scrape_concurrency", 8)), ENV)
    assert c.scheduler.stale_after == 7.5 and c.scheduler.scrape_concurrency == 8
    assert_error(with_("scheduler.scrape_concurrency", 0), "scheduler.scrape_concurrency", ">= 1")
    assert_error(with_("scheduler.metrics_fetch_interval", 2.5), "scheduler.metrics_fetch_interval", "integer")


# ----------------------------------------------------------------------------------------- f5 and secrets
def test_f5_host_required_and_non_empty() -> None:
    data = minimal()
    del data["f5"]["host"]
    assert_error(data, "f5.host", "required")
    assert_error(with_("f5.host", ""), "f5.host", "must not be empty")
    assert_error({"pools": minimal()["pools"]}, "f5.host", "required")


def test_password_env_required() -> None:
    data = minimal()
    del data["f5"]["password_env"]
    assert_error(data, "f5.password_env", "required (name of the environment variable that holds the BIG-IP password)")


@pytest.mark.parametrize(
    "env, gist",
    [
        ({}, "environment variable F5_PASSWORD is not set"),
        ({"F5_PASSWORD": ""}, "environment variable F5_PASSWORD is empty"),
    ],
)
def test_password_env_unset_or_empty(env: dict[str, str], gist: str) -> None:
    assert_error(minimal(), "f5.password_env", gist, env)


def test_literal_password_rejected_without_echoing_it() -> None:
    errors = errors_of(with_("f5.password", "hunter2"))
    assert "password_env" in errors["f5.password"][0]
    assert "hunter2" not in str(errors)


def test_f5_extensions(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    data = with_("f5.ca_bundle", str(ca), with_("f5.verify", False, with_("f5.auth", "BASIC")))
    c = parse_config(with_("f5.login_provider", "radius", with_("f5.timeout", 2.5, data)), ENV)
    assert (c.f5.verify, c.f5.ca_bundle, c.f5.auth, c.f5.login_provider, c.f5.timeout) == (
        False,
        str(ca),
        "basic",
        "radius",
        2.5,
    )
    assert_error(with_("f5.auth", "oauth"), "f5.auth", "must be one of token, basic")
    assert_error(with_("f5.verify", "no"), "f5.verify", "must be a boolean")
    assert_error(with_("f5.ca_bundle", str(tmp_path / "missing.pem")), "f5.ca_bundle", "file not found")
    assert_error(with_("f5.ca_bundle", str(tmp_path)), "f5.ca_bundle", "not a file")


def test_relative_ca_bundle_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(with_("f5.ca_bundle", "ca.pem")))
    assert load_config(f, ENV).f5.ca_bundle == str(tmp_path / "ca.pem")


def test_metric_pwd_env_unset_is_an_error_when_metric_user_set() -> None:
    data = with_("pools.0.metrics", {"metric_user": "u", "metric_pwd_env": "METRIC_PWD"})
    assert_error(
        data, "pools[0].metrics.metric_pwd_env", "environment variable METRIC_PWD is not set", {"F5_PASSWORD": "x"}
    )
    assert_error(
        with_("pools.0.metrics", {"metric_user": "u"}),
        "pools[0].metrics.metric_pwd_env",
        "required when metric_user is set",
    )


def test_metric_pwd_env_without_user_is_a_warning() -> None:
    c = parse_config(with_("pools.0.metrics", {"metric_pwd_env": "UNSET_VAR"}), ENV)
    assert c.pools[0].metrics.metric_pwd is None
    assert "pools[0].metrics.metric_pwd_env: ignored because metric_user is not set" in c.warnings


def test_secrets_masked_in_repr_and_render() -> None:
    env = {**ENV, "REDIS_URL": "redis://:redis-secret-value@db:6379/0"}
    c = load_config(EXAMPLE, env)
    secrets = ("f5-secret-value", "metric-secret-value", "abcdefdfdsfds", "redis-secret-value")
    for text in (repr(c), str(c), f"{c}", render_effective(c)):
        for secret in secrets:
            assert secret not in text
    rendered = render_effective(c)
    assert "password_env: F5_PASSWORD" in rendered and "metric_pwd_env: METRIC_PWD" in rendered
    assert f"APIkey: '{MASK}'" in rendered
    assert f"redis://:{MASK}@db:6379/0" in rendered
    assert c.redis.url == "redis://:redis-secret-value@db:6379/0"  # still usable as the real URL


def test_render_effective_round_trips() -> None:
    c = load_config(EXAMPLE, ENV)
    again = parse_config(yaml.safe_load(render_effective(c)), ENV)
    assert again.pools[0].metrics.api_key.reveal() == MASK
    assert again.global_ == c.global_ and again.f5 == c.f5 and again.modes == c.modes
    assert again.engines_metrics_keys == c.engines_metrics_keys and again.scheduler == c.scheduler


# ----------------------------------------------------------------------------------------- redis
def test_redis_defaults_and_values() -> None:
    data = with_(
        "redis",
        {
            "url": "rediss://r:6380/1",
            "namespace": "prod.a-1",
            "socket_timeout": 0.2,
            "sentinels": ["10.0.0.1:26379", "[::1]:26380"],
            "master_name": "mymaster",
        },
    )
    r = parse_config(data, ENV).redis
    assert (r.url, r.namespace, r.socket_timeout, r.master_name) == ("rediss://r:6380/1", "prod.a-1", 0.2, "mymaster")
    assert r.sentinels == (("10.0.0.1", 26379), ("::1", 26380))


def test_redis_url_env_override() -> None:
    data = with_("redis.url", "redis://file:6379/0")
    assert parse_config(data, {**ENV, "REDIS_URL": "unix:///run/redis.sock"}).redis.url == "unix:///run/redis.sock"
    assert parse_config(data, {**ENV, "REDIS_URL": ""}).redis.url == "redis://file:6379/0"
    assert parse_config(minimal(), {**ENV, "REDIS_URL": "redis://env:1/0"}).redis.url == "redis://env:1/0"
    assert_error(minimal(), "redis.url", "REDIS_URL must start with redis://", {**ENV, "REDIS_URL": "http://x"})


def test_redis_errors() -> None:
    assert_error(with_("redis.url", "http://x"), "redis.url", "must start with redis://, rediss:// or unix://")
    assert_error(with_("redis.namespace", "a b"), "redis.namespace", "only letters")
    assert_error(with_("redis.sentinels", ["h:1"]), "redis.master_name", "required when redis.sentinels")
    assert_error(with_("redis.master_name", "m"), "redis.sentinels", "required when redis.master_name")
    assert_error(
        with_("redis.sentinels", ["nope"], with_("redis.master_name", "m")), "redis.sentinels[0]", '"host:port"'
    )
    assert_error(with_("redis.sentinels", "h:1", with_("redis.master_name", "m")), "redis.sentinels", "must be a list")
