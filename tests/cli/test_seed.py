"""`llmsched seed` against a Redis that needs a password: it seeds the pool and never prints the password."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from llmsched.shared.store import Store

from tests.shared.secure_redis import SecureRedis

PASSWORD = "seed-pw-91c4"


@pytest.fixture()
def server() -> Iterator[SecureRedis]:
    made = SecureRedis([f"requirepass {PASSWORD}"], {"password": PASSWORD}).start()
    yield made
    made.close()


@pytest.mark.parametrize("where", ["user-info", "query"])
def test_seed_writes_the_pool_and_never_prints_the_redis_password(server: SecureRedis, where: str) -> None:
    base = f"127.0.0.1:{server.port}/0"
    url = f"redis://:{PASSWORD}@{base}" if where == "user-info" else f"redis://{base}?password={PASSWORD}"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "llmsched.cli.main", "seed", "--redis-url", url, "--pool", "p9"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "seeded pool p9:Common" in done.stdout and "********" in done.stdout
    assert Store(server.client(), "llmsched").scores("p9:Common")["members"]
