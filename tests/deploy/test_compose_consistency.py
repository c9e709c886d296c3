"""docker-compose.yml and deploy/Dockerfile agree with the CLI, the API and the shipped configs.

No Docker engine runs here, so the files are read as Docker would read them (tests/deploy/deploy_files.py)
and every claim they make is checked against the real thing: commands against the CLI parser (and a real
`--help` run), ports against the configs, health-check paths against the Flask app, secrets against what the
configs name.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from llmsched.cli.main import build_parser
from llmsched.shared.config import load_config

from tests.deploy.deploy_files import (
    CONFIG_TARGET,
    ROOT,
    MissingVariable,
    config_services,
    dockerfile,
    dockerfile_json,
    env_names_in_config,
    healthcheck_command,
    interpolate,
    llmsched_services,
    load_compose,
    raw_compose,
)
from tests.helpers import make_store

DUMMY = {"F5_PASSWORD": "dummy-f5", "METRIC_PWD": "dummy-metric"}
SHIPPED_CONFIGS = [ROOT / "config" / "scheduler-config.yaml", ROOT / "config" / "demo-compose.yaml"]
SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose(DUMMY)


def parse_cli(argv: list[str]):
    """Parse argv exactly as `llmsched` would; SystemExit (bad flag) becomes a test failure naming argv."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`llmsched {' '.join(argv)}` is rejected by the CLI parser")
    if argv[0] == "emulate":
        from llmsched.emulators.cli import build_parser as emulator_parser

        try:
            emulator_parser().parse_args(args.argv)
        except SystemExit:
            pytest.fail(f"`llmsched {' '.join(argv)}` is rejected by the emulator's parser")
    return args


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


# ------------------------------------------------------------------ commands
def test_every_service_command_is_an_llmsched_subcommand_whose_flags_parse(compose):
    services = llmsched_services(compose)
    assert {"poller", "scraper", "scorer", "api", "f5", "engine1", "engine2", "engine3"} <= set(services)
    for name, svc in services.items():
        args = parse_cli(svc["command"])
        assert args.command == svc["command"][0], name


def test_every_service_subcommand_answers_help_in_a_real_run(compose):
    commands = {
        tuple(svc["command"][:2]) if svc["command"][0] == "emulate" else (svc["command"][0],)
        for svc in llmsched_services(compose).values()
    }
    for command in sorted(commands):
        proc = subprocess.run(
            [sys.executable, "-m", "llmsched.cli.main", *command, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, f"llmsched {' '.join(command)} --help: {proc.stderr[-500:]}"
        assert "usage:" in proc.stdout


def test_dockerfile_entrypoint_is_the_installed_console_script_and_its_default_command_parses():
    assert dockerfile_json("ENTRYPOINT") == ["llmsched"]
    assert 'llmsched = "llmsched.cli.main:main"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    cmd = dockerfile_json("CMD")
    assert cmd == ["api", "--config", CONFIG_TARGET]
    parse_cli(cmd)


def test_dockerfile_runs_as_non_root_stops_on_sigterm_and_installs_without_dev_extras():
    instructions = dockerfile()
    assert [a for i, a in instructions if i == "FROM"][-1] == "python:3.11-slim"
    user = [a for i, a in instructions if i == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert [a for i, a in instructions if i == "STOPSIGNAL"] == ["SIGTERM"]
    installs = [a for i, a in instructions if i == "RUN" and "pip install" in a]
    assert installs and not any("[test]" in a or "[dev]" in a for a in installs)
    copies = [a for i, a in instructions if i == "COPY"]
    assert any(a.endswith(CONFIG_TARGET) and "config/scheduler-config.yaml" in a for a in copies)


# ------------------------------------------------------------------ ports and health checks
@pytest.mark.parametrize("config_path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_api_port_in_compose_and_image_matches_the_config_api_port(compose, config_path):
    api_port = load_config(config_path, env=DUMMY).global_.api_port
    api = compose["services"]["api"]
    assert api["environment"]["LLMSCHED_API_PORT"] == str(api_port)
    (published,) = api["ports"]
    host_range, _, target = published.rpartition(":")
    assert target == str(api_port)
    assert dockerfile_env()["LLMSCHED_API_PORT"] == str(api_port)
    assert [a for i, a in dockerfile() if i == "EXPOSE"] == [str(api_port)]
    # The config must listen on every interface inside the container, or the published port reaches nothing.
    assert load_config(config_path, env=DUMMY).global_.api_host == "0.0.0.0"


def test_api_scales_with_one_published_host_port_per_replica(compose):
    for name, svc in compose["services"].items():
        assert "container_name" not in svc, f"{name}: a fixed container_name blocks --scale"
    (published,) = compose["services"]["api"]["ports"]
    host_range = published.rpartition(":")[0]
    low, sep, high = host_range.partition("-")
    assert sep and int(high) - int(low) >= 1, f"api publishes {published!r}: --scale needs a host port range"


def test_health_check_paths_exist_in_the_api_and_read_the_port_from_the_environment(compose, redis_url):
    from llmsched.api.app import create_app

    routes = {rule.rule for rule in create_app(make_store(redis_url)).url_map.iter_rules()}
    checks = [healthcheck_command(), compose["services"]["api"]["healthcheck"]["test"][1:]]
    for check in checks:
        code = check[-1]
        (path,) = re.findall(r"/\w+(?=')", code)
        assert path in routes, f"health check probes {path}, which the API does not serve"
        assert "LLMSCHED_API_PORT" in code and not re.search(r"127\.0\.0\.1:\d", code), "port hard-coded"
    assert "/health" in routes, "the BIG-IP monitor in deploy/f5/README.md probes /health"


def test_only_the_api_keeps_the_image_health_check(compose):
    for name, svc in llmsched_services(compose).items():
        if name == "api" or name.startswith("engine"):
            assert svc["healthcheck"].get("test"), name
        else:
            assert svc["healthcheck"] == {"disable": True}, f"{name} serves no /livez"


# ------------------------------------------------------------------ config and secrets
def test_every_config_process_mounts_the_config_read_only_where_its_command_reads_it(compose):
    services = config_services(compose)
    assert set(services) == {"poller", "scraper", "scorer", "api"}
    for name, svc in services.items():
        (volume,) = [v for v in svc["volumes"] if v["target"] == CONFIG_TARGET]
        assert volume["read_only"] is True, name
        assert volume["source"] == "./config/scheduler-config.yaml", name
        assert svc["command"][svc["command"].index("--config") + 1] == CONFIG_TARGET, name
    overridden = load_compose({**DUMMY, "LLMSCHED_CONFIG": "./config/demo-compose.yaml"})
    for svc in config_services(overridden).values():
        assert [v["source"] for v in svc["volumes"]] == ["./config/demo-compose.yaml"]


@pytest.mark.parametrize("config_path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_every_secret_a_config_names_reaches_every_process_that_loads_it(compose, config_path):
    names = env_names_in_config(config_path)
    assert "F5_PASSWORD" in names
    for name, svc in config_services(compose).items():
        missing = names - set(svc["environment"])
        assert not missing, f"{name} loads {config_path.name} but gets no {sorted(missing)}"


def test_the_emulated_bigip_gets_the_password_variable_its_command_names(compose):
    f5 = compose["services"]["f5"]
    assert "--password-env" in f5["command"]
    assert f5["command"][f5["command"].index("--password-env") + 1] in f5["environment"]


@pytest.mark.parametrize("config_path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_config_passes_check_config_with_dummy_secrets(config_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({name: "dummy" for name in env_names_in_config(config_path)})
    proc = subprocess.run(
        [sys.executable, "-m", "llmsched.cli.main", "check-config", str(config_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dummy" not in proc.stdout, "check-config printed a secret"


def test_compose_file_holds_no_secret_literal():
    raw = raw_compose()
    for name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{%s(:?[-?][^}]*)?\}" % key, str(value)), (
                    f"{name}.environment.{key} must come from the environment, not be written here"
                )
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert not re.search(r"^\s*-?\s*(password|apikey|api_key|token)\s*[:=]", text, re.IGNORECASE | re.MULTILINE)


def test_compose_refuses_to_start_without_the_bigip_password():
    with pytest.raises(MissingVariable, match="F5_PASSWORD"):
        load_compose({})
    assert interpolate("${METRIC_PWD:-}", {}) == ""  # optional: only configs that name it need it


# ------------------------------------------------------------------ runtime policy
def test_every_service_restarts_unless_stopped_and_gets_10s_to_stop(compose):
    for name, svc in compose["services"].items():
        assert svc["restart"] == "unless-stopped", name
        assert svc["stop_grace_period"] == "10s", name


def test_redis_is_redis7_without_persistence_and_gates_the_processes(compose):
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7"
    assert redis["command"][redis["command"].index("--save") + 1] == ""
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "no"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in redis, "Redis holds no secret but must not be reachable from outside the project"
    for name, svc in config_services(compose).items():
        assert svc["environment"]["REDIS_URL"] == "redis://redis:6379/0", name
        assert svc["depends_on"] == {"redis": {"condition": "service_healthy"}}, name


def test_all_llmsched_services_build_from_deploy_dockerfile(compose):
    for name, svc in llmsched_services(compose).items():
        assert svc["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}, name
    assert (ROOT / "deploy" / "Dockerfile").is_file()
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and ".git" in ignored and "tests" in ignored


def test_dockerignore_keeps_everything_the_image_build_copies():
    ignored = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    needed = [
        "pyproject.toml",
        "__init__.py",
        "config/scheduler-config.yaml",
        "api/gunicorn_conf.py",
        "cli/main.py",
        "shared/config.py",
        "api/app.py",
    ]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not _ignored(path, ignored), f".dockerignore drops {path}, which the image needs"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    from fnmatch import fnmatch

    verdict = False
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        if any(fnmatch(prefix, pat) or fnmatch(prefix, pat.removeprefix("**/")) for prefix in prefixes):
            verdict = not negate
    return verdict


def test_compose_file_uses_only_top_level_keys_that_docker_compose_1_29_accepts():
    # Debian 12's docker-compose 1.29.2 validates against a schema whose top level allows only these (and x-*);
    # a top-level `name:` makes it refuse the whole file. Checked with the real 1.29.2 (`docker-compose config`).
    allowed = {"version", "services", "networks", "volumes", "secrets", "configs"}
    assert {k for k in raw_compose() if not k.startswith("x-")} <= allowed
