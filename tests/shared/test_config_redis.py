"""The `redis` section's authentication and TLS keys (shared/config_redis.py): every mistake is an error naming its
key, secrets never show, and a password in a URL is masked wherever the URL is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsched.shared.config import parse_config, render_effective
from llmsched.shared.config_fields import mask_url
from llmsched.shared.secrets import MASK

from tests.shared.config_cases import ENV, errors_of, minimal

URL = "redis://127.0.0.1:6379/0"


def with_redis(**section: object) -> dict:
    return {**minimal(), "redis": section}


@pytest.fixture()
def pem(tmp_path: Path) -> str:
    path = tmp_path / "file.pem"
    path.write_text("not read at load time")
    return str(path)


def test_a_literal_redis_password_is_refused_with_the_key_to_use_instead() -> None:
    errors = errors_of(with_redis(url=URL, password="hunter2"))
    assert "redis.password_env" in errors["redis.password"][0]
    assert (
        "sentinel_password_env" in errors_of(with_redis(url=URL, sentinel_password="x"))["redis.sentinel_password"][0]
    )


def test_password_env_must_name_a_set_variable_and_username_needs_a_password() -> None:
    assert errors_of(with_redis(url=URL, password_env="NOPE"))["redis.password_env"] == [
        "environment variable NOPE is not set"
    ]
    assert "required when username is set" in errors_of(with_redis(url=URL, username="u"))["redis.password_env"][0]


def test_a_password_in_the_url_and_in_password_env_is_ambiguous() -> None:
    errors = errors_of(with_redis(url="redis://:pw@127.0.0.1/0", password_env="F5_PASSWORD"))
    assert "carries a password already" in errors["redis.password_env"][0]
    errors = errors_of(with_redis(url=f"{URL}?password=pw", password_env="F5_PASSWORD"))
    assert "carries a password already" in errors["redis.password_env"][0]


def test_tls_files_need_a_tls_connection_and_a_certificate_needs_its_key(pem: str) -> None:
    assert "not TLS" in errors_of(with_redis(url=URL, tls_ca=pem))["redis.tls_ca"][0]
    assert "rediss://" in errors_of(with_redis(url=URL, tls=True))["redis.tls"][0]
    errors = errors_of(with_redis(url="rediss://127.0.0.1/0", tls_cert=pem))
    assert "required when tls_cert is set" in errors["redis.tls_key"][0]
    errors = errors_of(with_redis(url="rediss://127.0.0.1/0", tls_ca="/nowhere/ca.pem"))
    assert errors["redis.tls_ca"] == ["file not found: /nowhere/ca.pem"]


def test_a_tls_file_from_the_environment_is_checked_and_named_by_its_variable() -> None:
    errors = errors_of(with_redis(url="rediss://127.0.0.1/0"), {**ENV, "LLMSCHED_REDIS_TLS_CA": "/nowhere/ca.pem"})
    assert errors["redis.tls_ca"] == ["file not found: /nowhere/ca.pem (from LLMSCHED_REDIS_TLS_CA)"]


def test_sentinel_credentials_without_sentinels_are_an_error() -> None:
    errors = errors_of(with_redis(url=URL, sentinel_password_env="F5_PASSWORD"))
    assert errors["redis.sentinel_password_env"] == ["only used with redis.sentinels"]


def test_sentinel_and_master_credentials_load_and_render_masked(pem: str) -> None:
    env = {**ENV, "RPW": "master-secret", "SPW": "sentinel-secret"}
    section = {
        "sentinels": ["127.0.0.1:26379"],
        "master_name": "m",
        "username": "llmsched",
        "password_env": "RPW",
        "tls": True,
        "tls_ca": pem,
        "sentinel_password_env": "SPW",
        "sentinel_tls": True,
    }
    config = parse_config(with_redis(**section), env)
    assert config.redis.password.reveal() == "master-secret"
    assert config.redis.sentinel_password.reveal() == "sentinel-secret"
    rendered = render_effective(config)
    assert "master-secret" not in rendered and "sentinel-secret" not in rendered
    assert "password_env: RPW" in rendered and "sentinel_password_env: SPW" in rendered


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw1@h:6379/0", f"redis://:{MASK}@h:6379/0"),
        ("redis://user:pw1@h/0?password=pw2&db=1", f"redis://user:{MASK}@h/0?password={MASK}&db=1"),
        ("rediss://h/0?password=p%40w", f"rediss://h/0?password={MASK}"),
        ("redis://h/0?socket_timeout=1", "redis://h/0?socket_timeout=1"),
    ],
)
def test_mask_url_hides_the_password_in_the_user_info_and_in_the_query(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_check_config_output_never_shows_a_password_given_as_a_url_parameter() -> None:
    config = parse_config(with_redis(url="redis://127.0.0.1:6379/0?password=s3cr3t-in-query"), ENV)
    rendered = render_effective(config)
    assert "s3cr3t-in-query" not in rendered and f"password={MASK}" in rendered
    assert "s3cr3t-in-query" not in repr(config)
