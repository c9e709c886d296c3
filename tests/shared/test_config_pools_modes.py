"""Tests of llmsched.shared.config: modes, pools, engine variants and unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmsched.shared.config import load_config, parse_config
from llmsched.shared.config_model import ModeConfig

from tests.shared.config_cases import ENV, assert_error, errors_of, minimal, with_


# ----------------------------------------------------------------------------------------- modes
def test_unknown_mode_name() -> None:
    assert_error(
        with_("modes", [{"name": "s1_enhanced_high_cache"}]),
        "modes[0].name",
        "unknown mode 's1_enhanced_high_cache'; must be one of s1, s1_enhanced",
    )


def test_later_modes_validated_and_ignored_with_warning() -> None:
    assert_error(with_("modes", [{"name": "s1"}, {"name": "bogus"}]), "modes[1].name", "unknown mode")
    c = parse_config(with_("modes", [{"name": "S2", "w_g": 0.2}, {"name": "s1_nonlinear", "power": 2.0}]), ENV)
    assert c.mode == ModeConfig(name="s2", w_g=0.2)
    assert any(w.startswith("modes: only modes[0] is used") for w in c.warnings)
    assert "modes[1].power: not configurable (s1_nonlinear always uses 2.0); ignored" in c.warnings


@pytest.mark.parametrize(
    "key, value, gist",
    [
        ("w_a", -0.1, ">= 0"),
        ("w_b", float("inf"), "finite"),
        ("w_g", "0.5", "must be a number"),
        ("transition_point", 0, "greater than 0"),
        ("steepness", -1, "greater than 0"),
    ],
)
def test_mode_number_errors(key: str, value: Any, gist: str) -> None:
    assert_error(with_("modes", [{"name": "s1", key: value}]), f"modes[0].{key}", gist)


def test_empty_modes_is_a_warning() -> None:
    c = parse_config(with_("modes", []), ENV)
    assert c.modes == () and c.mode is None
    assert "modes: no scoring mode: every decision answers none" in c.warnings


def test_modes_errors() -> None:
    assert_error(with_("modes", None), "modes", "must be a list")
    assert_error(with_("modes", [5]), "modes[0]", "must be a mapping")
    assert_error(with_("modes", [{"name": "s1", "wa": 1}]), "modes[0].wa", "unknown key")


# ----------------------------------------------------------------------------------------- pools
def test_engine_type_case_insensitive() -> None:
    assert parse_config(with_("pools.0.engine_type", "VLLM"), ENV).pools[0].engine_type == "vllm"
    assert parse_config(with_("pools.0.engine_type", "Auto"), ENV).pools[0].engine_type == "auto"


def test_engine_type_errors() -> None:
    data = with_("pools", [{"name": "a", "engine_type": "vllm"}, {"name": "b", "engine_type": "tgi"}])
    assert_error(data, "pools[1].engine_type", "must be one of vllm, sglang, auto")
    assert_error(with_("pools.0.engine_type", "xinference"), "pools[0].engine_type", "xinference is not supported yet")
    data = minimal()
    del data["pools"][0]["engine_type"]
    assert_error(data, "pools[0].engine_type", "required")


def test_model_apikey_block_is_a_warning() -> None:
    block = {"f5datagroup": "dg", "api_key_sync_interval": 5, "failure_mode": "preserve"}
    c = parse_config(with_("pools.0.model_APIkey", block), ENV)
    assert "pools[0].model_APIkey: XInference API-key sync is not supported yet; ignored" in c.warnings
    assert_error(
        with_("pools.0.model_APIkey", {"f5datagroupp": "dg"}), "pools[0].model_APIkey.f5datagroupp", "unknown key"
    )


def test_members_key_is_a_warning() -> None:
    c = parse_config(with_("pools.0.members", [{"ip": "10.0.0.1", "port": 8000}]), ENV)
    assert "pools[0].members: ignored; pool members are read from BIG-IP" in c.warnings


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_pool_fallback_must_be_a_real_boolean(value: Any) -> None:
    assert_error(
        with_("pools.0.fallback.pool_fallback", value),
        "pools[0].fallback.pool_fallback",
        "must be a boolean" if value is not None else "must not be null",
    )


def test_pool_fallback_yaml_booleans(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        yaml.safe_dump(minimal()).replace(
            "engine_type: vllm", "engine_type: vllm\n  fallback:\n    pool_fallback: true"
        )
    )
    assert load_config(f, ENV).pools[0].fallback.pool_fallback is True


def test_thresholds() -> None:
    base = with_("pools.0.fallback", {"member_running_req_threshold": 0, "member_waiting_queue_threshold": None})
    fb = parse_config(base, ENV).pools[0].fallback
    assert fb.member_running_req_threshold == 0.0 and fb.member_waiting_queue_threshold is None
    assert_error(
        with_("pools.0.fallback.member_waiting_queue_threshold", -1),
        "pools[0].fallback.member_waiting_queue_threshold",
        ">= 0",
    )


def test_metrics_timeout_is_a_real_float() -> None:
    assert parse_config(with_("pools.0.metrics.timeout", 0.5), ENV).pools[0].metrics.timeout == 0.5
    assert_error(with_("pools.0.metrics.timeout", 0), "pools[0].metrics.timeout", "greater than 0")
    assert_error(with_("pools.0.metrics.timeout", "4"), "pools[0].metrics.timeout", "must be a number")


def test_metrics_errors() -> None:
    assert_error(with_("pools.0.metrics.schema", "ftp"), "pools[0].metrics.schema", "must be one of http, https")
    assert_error(with_("pools.0.metrics.path", "metrics"), "pools[0].metrics.path", "must start with '/'")
    assert_error(with_("pools.0.metrics.timout", 3), "pools[0].metrics.timout", "unknown key")
    assert_error(with_("pools.0.metrics.APIkey", 123), "pools[0].metrics.APIkey", "must be a string")
    assert_error(with_("pools.0.metrics.verify", "yes"), "pools[0].metrics.verify", "must be a boolean")


def test_metrics_extensions(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    m = (
        parse_config(
            with_("pools.0.metrics", {"schema": "HTTPS", "verify": False, "ca_bundle": str(tmp_path / "ca.pem")}), ENV
        )
        .pools[0]
        .metrics
    )
    assert (m.schema, m.verify, m.ca_bundle) == ("https", False, str(tmp_path / "ca.pem"))


def test_pool_names_and_duplicates() -> None:
    assert_error(with_("pools.0.name", ""), "pools[0].name", "must not be empty")
    assert_error(with_("pools.0.name", 42), "pools[0].name", "must be a string")
    data = with_(
        "pools",
        [
            {"name": "Pool_vllm", "engine_type": "vllm"},
            {"name": "Pool_vllm", "partition": "Other", "engine_type": "vllm"},
            {"name": "Pool_vllm", "partition": "Common", "engine_type": "sglang"},
        ],
    )
    errors = errors_of(data)
    assert errors == {"pools[2]": ["duplicate pool Pool_vllm:Common"]}


@pytest.mark.parametrize(
    "pools, gist",
    [([], "at least one pool"), (None, "at least one pool"), ("p1", "must be a list"), ([5], "must be a mapping")],
)
def test_pools_list_errors(pools: Any, gist: str) -> None:
    errors = errors_of(with_("pools", pools))
    assert any(gist in m for msgs in errors.values() for m in msgs), errors


def test_pools_required() -> None:
    assert_error({"f5": minimal()["f5"]}, "pools", "required")


# ----------------------------------------------------------------------------------------- engines / unknown keys
def test_engine_variants() -> None:
    data = with_("engines_metrics_keys", {"SGLang_x": {"waiting_queue": "q"}, "vllm_empty": None})
    c = parse_config(data, ENV)
    (v,) = c.engines_metrics_keys
    assert (v.name, v.waiting_queue, v.cache_usage, v.base_engine) == ("SGLang_x", "q", None, "sglang")
    assert any(w.startswith("engines_metrics_keys.vllm_empty: no metric names") for w in c.warnings)
    assert_error(
        with_("engines_metrics_keys", {"tgi_x": {"waiting_queue": "q"}}),
        "engines_metrics_keys.tgi_x",
        "must start with vllm or sglang",
    )
    assert_error(
        with_("engines_metrics_keys", {"vllm_x": {"waiting": "q"}}),
        "engines_metrics_keys.vllm_x.waiting",
        "unknown key",
    )
    assert_error(with_("engines_metrics_keys", ["x"]), "engines_metrics_keys", "must be a mapping")


@pytest.mark.parametrize(
    "path, shown",
    [
        ("bogus", "bogus"),
        ("global.intervall", "global.intervall"),
        ("f5.hostname", "f5.hostname"),
        ("pools.0.fallbak", "pools[0].fallbak"),
        ("pools.0.fallback.pool_fallbak", "pools[0].fallback.pool_fallbak"),
    ],
)
def test_unknown_keys_are_errors(path: str, shown: str) -> None:
    assert_error(with_(path, 1), shown, "unknown key")


def test_null_sections_mean_defaults() -> None:
    data = {**minimal(), "global": None, "scheduler": None, "redis": None}
    c = parse_config(with_("pools.0.metrics", None, data), ENV)
    assert c.global_.interval == 60 and c.pools[0].metrics.path == "/metrics"
    assert_error(with_("global", [1]), "global", "must be a mapping")


def test_metric_pwd_env_null_or_empty_with_user() -> None:
    assert_error(
        with_("pools.0.metrics", {"metric_user": "u", "metric_pwd_env": None}),
        "pools[0].metrics.metric_pwd_env",
        "required when metric_user is set",
    )
    errors = errors_of(with_("pools.0.metrics", {"metric_user": "u", "metric_pwd_env": ""}))
    assert errors["pools[0].metrics.metric_pwd_env"] == ["must not be empty"]
