"""What `llmsched api` hands to gunicorn about who may connect: where it listens without a config, the
allow-list from `global.api_allowed_clients`, and the read deadline and per-source cap from its flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from llmsched.cli.api import api_environment
from llmsched.shared.config import load_config
from llmsched.shared.errors import ConfigError

BASE = {
    "f5": {"host": "127.0.0.1", "password_env": "TEST_F5_PW"},
    "redis": {"url": "redis://r:1/0"},
    "pools": [{"name": "p", "engine_type": "vllm"}],
}


def args(**given: object) -> argparse.Namespace:
    fields = {"config": None, "redis_url": None, "bind": None, "workers": None}
    fields.update({"read_timeout": None, "max_connections_per_source": None, **given})
    return argparse.Namespace(**fields)


def config(tmp_path: Path, **global_: object):
    path = tmp_path / "scheduler-config.yaml"
    path.write_text(yaml.safe_dump({**BASE, "global": global_}))
    return load_config(path, env={"TEST_F5_PW": "pw"})


def test_without_a_config_the_api_listens_on_this_host_only_unless_bind_says_otherwise() -> None:
    assert api_environment(args(), {})["LLMSCHED_API_BIND"] == "127.0.0.1:8080"
    assert api_environment(args(bind="0.0.0.0:9000"), {})["LLMSCHED_API_BIND"] == "0.0.0.0:9000"


def test_the_allow_list_reaches_the_workers_and_unset_leaves_the_api_open(tmp_path: Path) -> None:
    listed = config(tmp_path, api_allowed_clients=["10.1.10.5", "10.1.20.0/24", "2001:db8::/64"])
    env = api_environment(args(), {}, listed)
    assert env["LLMSCHED_API_ALLOWED_CLIENTS"] == "10.1.10.5,10.1.20.0/24,2001:db8::/64"
    assert "LLMSCHED_API_ALLOWED_CLIENTS" not in api_environment(args(), {}, config(tmp_path))


def test_a_bad_allow_list_entry_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"global\.api_allowed_clients\[1\]: must be an IP address or CIDR"):
        config(tmp_path, api_allowed_clients=["10.1.10.5", "bigip-1"])


def test_the_read_deadline_and_per_source_cap_flags_reach_the_workers() -> None:
    env = api_environment(args(read_timeout=0.5, max_connections_per_source=64), {})
    assert env["LLMSCHED_API_READ_TIMEOUT"] == "0.5" and env["LLMSCHED_API_MAX_CONNECTIONS_PER_SOURCE"] == "64"
