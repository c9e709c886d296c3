"""Redis authentication and TLS end to end, against real servers on 127.0.0.1: `requirepass`,
an ACL user limited to llmsched's keys (and rq's), a TLS-only port that requires a client certificate, and a
Sentinel group with passwords and TLS on both the Sentinel and the master. Each test goes from a config (or the
API's environment) to a working client, and each proves the server really refuses a client without it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq import SimpleWorker

from llmsched.api.app import create_app, store_from_env
from llmsched.scorer import jobs
from llmsched.shared.config import parse_config
from llmsched.shared.redis_conn import client_for, target_from_config, target_from_env
from llmsched.shared.scoring_queue import SERIALIZER, enqueue_scoring
from llmsched.shared.store import Store

from tests.conftest import free_port
from tests.scorer.test_jobs import POOL, put_unscored_pool
from tests.shared.config_cases import ENV, minimal
from tests.shared.secure_redis import SecureRedis, TlsFiles, make_tls_files, tls_server_lines

MASTER_PW, SENTINEL_PW, USER_PW = "master-pw-0d1e", "sentinel-pw-77a2", "user-pw-5c3b"
SECRETS = {**ENV, "REDIS_PW": MASTER_PW, "SENTINEL_PW": SENTINEL_PW, "USER_PW": USER_PW, "REDIS_USER": "llmsched"}
# The llmsched user: its own keys and rq's (queue, jobs, workers, registries), rq's pub/sub channels, every command
# but the dangerous ones, plus INFO (rq reads the server version with it).
ACL_USER = f"user llmsched on >{USER_PW} ~llmsched:* ~rq:* &llmsched:* &rq:* +@all -@dangerous +info"


def config(redis_section: dict[str, Any]) -> Any:
    return parse_config({**minimal(), "redis": redis_section}, SECRETS)


def client_of(redis_section: dict[str, Any]) -> redis.Redis:
    return client_for(target_from_config(config(redis_section).redis), socket_timeout=2.0)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def acl_server() -> Iterator[SecureRedis]:
    server = SecureRedis([f"requirepass {MASTER_PW}", ACL_USER], {"password": MASTER_PW}).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tls_server(tls: TlsFiles) -> Iterator[SecureRedis]:
    port = free_port()
    options = {"ssl": True, "ssl_ca_certs": tls.ca, "ssl_certfile": tls.client_cert, "ssl_keyfile": tls.client_key}
    server = SecureRedis(
        tls_server_lines(tls, port) + [f"requirepass {MASTER_PW}"], {**options, "password": MASTER_PW}, port=port
    )
    yield server.start()
    server.close()


@pytest.fixture(scope="module")
def sentinel(tls: TlsFiles, tls_server: SecureRedis) -> Iterator[SecureRedis]:
    """One Sentinel with its own password on a TLS-only port, watching the TLS master with the master's password."""
    port = free_port()
    lines = tls_server_lines(tls, port) + [
        f"requirepass {SENTINEL_PW}",
        f"sentinel monitor mymaster 127.0.0.1 {tls_server.port} 1",
        f"sentinel auth-pass mymaster {MASTER_PW}",
        "sentinel down-after-milliseconds mymaster 1000",
    ]
    options = {**tls_server.client_options, "password": SENTINEL_PW}
    server = SecureRedis(lines, options, sentinel=True, port=port).start()
    deadline = time.monotonic() + 10
    while server.client().execute_command("SENTINEL", "MASTER", "mymaster") is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    yield server
    server.close()


def run_one_scoring_job(connection: redis.Redis, store: Store) -> None:
    worker = SimpleWorker([store.keys.scoring_queue], connection=connection, serializer=SERIALIZER)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert worker.work(burst=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_the_password_from_password_env_reaches_a_requirepass_server(acl_server: SecureRedis) -> None:
    url = f"redis://127.0.0.1:{acl_server.port}/0"
    assert client_of({"url": url, "password_env": "REDIS_PW"}).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url).ping()  # the server really demands it


def test_an_acl_user_limited_to_llmsched_keys_runs_scoring_and_decisions(acl_server: SecureRedis) -> None:
    section = {"url": f"redis://127.0.0.1:{acl_server.port}/0", "username_env": "REDIS_USER", "password_env": "USER_PW"}
    target = target_from_config(config(section).redis)
    store = Store(client_for(target, socket_timeout=2.0), "llmsched")
    with pytest.raises(redis.exceptions.NoPermissionError):
        store.client.set("someone-else:key", "1")  # the user is limited to llmsched's keys and rq's
    put_unscored_pool(store, {"10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1}})
    assert enqueue_scoring(store, POOL, "scrape")
    jobs.install_store(store)
    try:
        run_one_scoring_job(client_for(target, socket_timeout=None, connect_timeout=2.0), store)
    finally:
        jobs.install_store(None)
    assert store.scores(POOL)["members"][0]["score"] is not None
    # The API gets the same user through its environment (`llmsched api --config` sets it from the config).
    env = {**target.env(), "LLMSCHED_REDIS_TIMEOUT": "1.0"}
    assert env["LLMSCHED_REDIS_USERNAME"] == "llmsched" and env["LLMSCHED_REDIS_PASSWORD"] == USER_PW
    app = create_app(store_from_env(env), admin_token="")
    reply = app.test_client().post(
        "/scheduler/select", json={"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"]}
    )
    assert reply.status_code == 200 and reply.get_data(as_text=True) == "10.0.0.1:8000"


def test_tls_with_a_client_certificate_from_the_config_and_from_the_environment(
    tls: TlsFiles, tls_server: SecureRedis
) -> None:
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    files = {"tls_ca": tls.ca, "tls_cert": tls.client_cert, "tls_key": tls.client_key}
    assert client_of({"url": url, "password_env": "REDIS_PW", **files}).ping()
    # The files may come from LLMSCHED_REDIS_TLS_* instead (a deployment mounts them where it likes).
    env = {"LLMSCHED_REDIS_TLS_CA": tls.ca, "LLMSCHED_REDIS_TLS_CERT": tls.client_cert}
    env["LLMSCHED_REDIS_TLS_KEY"] = tls.client_key
    from_env = parse_config({**minimal(), "redis": {"url": url, "password_env": "REDIS_PW"}}, {**SECRETS, **env})
    target = target_from_config(from_env.redis)
    assert client_for(target, socket_timeout=2.0).ping()
    assert client_for(target_from_env(target.env()), socket_timeout=2.0).ping()  # the API's way
    with pytest.raises(redis.ConnectionError):  # the server requires the client certificate
        redis.Redis.from_url(url, password=MASTER_PW, ssl_ca_certs=tls.ca, socket_timeout=2.0).ping()


def test_sentinel_with_passwords_and_tls_on_the_sentinel_and_the_master(tls: TlsFiles, sentinel: SecureRedis) -> None:
    files = {"tls_ca": tls.ca, "tls_cert": tls.client_cert, "tls_key": tls.client_key}
    section = {
        "sentinels": [f"127.0.0.1:{sentinel.port}"],
        "master_name": "mymaster",
        "password_env": "REDIS_PW",
        "tls": True,
        **files,
        "sentinel_password_env": "SENTINEL_PW",
        "sentinel_tls": True,
        **{f"sentinel_{key}": value for key, value in files.items()},
    }
    target = target_from_config(config(section).redis)
    client = client_for(target, socket_timeout=2.0)
    client.set("llmsched:probe", "1")
    assert client.get("llmsched:probe") == b"1"
    api_target = target_from_env(target.env())
    assert api_target == target
    assert client_for(api_target, socket_timeout=2.0).get("llmsched:probe") == b"1"
    without = {k: v for k, v in section.items() if k != "sentinel_password_env"}
    with pytest.raises(redis.RedisError):  # the Sentinel refuses to name the master without its password
        client_of(without).ping()


def test_the_redis_password_never_shows_in_the_target_description_or_the_effective_config(
    acl_server: SecureRedis,
) -> None:
    from llmsched.shared.config import render_effective

    section = {"url": f"redis://127.0.0.1:{acl_server.port}/0", "username_env": "REDIS_USER", "password_env": "USER_PW"}
    loaded = config(section)
    assert USER_PW not in render_effective(loaded)
    assert USER_PW not in repr(loaded) and USER_PW not in target_from_config(loaded.redis).describe()
