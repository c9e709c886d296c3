"""`python -m llmsched.emulators f5|engine`: prints where it listens, serves, and exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from llmsched.emulators.cli import main

REPO = Path(__file__).resolve().parents[2]


async def _start(*args: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmsched.emulators",
        *args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
    return proc, line


async def test_engine_subcommand_serves_and_stops():
    proc, line = await _start(
        "engine",
        "--port",
        "0",
        "--engine",
        "sglang",
        "--sglang-prefix",
        "underscore",
        "--api-key-env",
        "EMU_KEY",
        env={"EMU_KEY": "k"},
    )
    assert line.startswith("sglang engine emulator listening on http://127.0.0.1:")
    url = line.split()[5]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/metrics", headers={"Authorization": "Bearer k"}) as r:
            assert r.status == 200 and "sglang_num_queue_reqs" in await r.text()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), timeout=10) == 0


async def test_f5_subcommand_serves_and_stops():
    proc, line = await _start(
        "f5",
        "--port",
        "0",
        "--no-tls",
        "--password-env",
        "EMU_PW",
        "--pool",
        "/Common/vllm_pool=127.0.0.1:8001,127.0.0.1:8002",
        env={"EMU_PW": "pw"},
    )
    assert line.startswith("f5 emulator listening on http://127.0.0.1:")
    url = line.split()[4]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/mgmt/shared/authn/login", json={"username": "admin", "password": "pw", "loginProviderName": "tmos"}
        ) as r:
            token = (await r.json())["token"]["token"]
        async with http.get(
            f"{url}/mgmt/tm/ltm/pool/~Common~vllm_pool/members", headers={"X-F5-Auth-Token": token}
        ) as r:
            assert [i["name"] for i in (await r.json())["items"]] == ["127.0.0.1:8001", "127.0.0.1:8002"]
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), timeout=10) == 0


def test_bad_option_values_exit_nonzero(tmp_path):
    assert main(["engine", "--port", "0", "--speed", "0"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools: [{members: []}]\n")  # a pool without a name
    assert main(["f5", "--port", "0", "--config", str(bad)]) == 2
