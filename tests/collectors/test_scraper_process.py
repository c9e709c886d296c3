"""The `llmsched scraper` process: it scrapes, applies a reloaded config and exits 0 on SIGTERM mid-scrape."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from llmsched.shared.members import Member
from llmsched.shared.store import Store

from tests.collectors.test_scraper import POOL, REPO, Harness, h, member_id  # noqa: F401  (h: the fixture)

# --- the process -------------------------------------------------------------------------------------------
CONFIG_YAML = """\
global: {{interval: 0.2, log_level: DEBUG}}
f5: {{host: 127.0.0.1, password_env: LLMSCHED_TEST_F5_PW}}
redis: {{url: "{url}", namespace: scrapertest}}
scheduler: {{metrics_fetch_interval: 100}}
pools:
  - name: vllm_pool
    engine_type: vllm
    fallback: {{pool_fallback: {fallback}}}
    metrics: {{timeout: 60, APIkey: proc-key-xyz}}
"""
RUNNER = (
    "import argparse, sys; import llmsched.cli.scraper as s; p = argparse.ArgumentParser(); s.add_arguments(p); "
    "sys.exit(s.run(p.parse_args(sys.argv[1:])))"
)


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_the_process_scrapes_reloads_and_exits_0_on_sigterm_mid_scrape(
    h: Harness,
    redis_url: str,
    tmp_path: Path,
):
    e = await h.engine(api_key="proc-key-xyz")
    store = Store(h.store.client, "scrapertest")
    ms = [Member(e.host, e.port)]
    store.set_members(POOL, {"fetched_at": time.time(), "members": [m.to_dict() for m in ms], "error": None})
    workdir = tmp_path  # pytest's, cleaned up by pytest (a mkdtemp here was left in /tmp after every run)
    cfg = workdir / "scheduler-config.yaml"
    cfg.write_text(CONFIG_YAML.format(url=redis_url, fallback="false"))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["LLMSCHED_TEST_F5_PW"] = "f5-pw-not-used"
    errlog = open(workdir / "stderr.log", "wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER, "--config", str(cfg), cwd=REPO, env=env, stdout=errlog, stderr=errlog
    )
    try:
        await _until(lambda: store.metrics(POOL).get(member_id(e), {}).get("status") == "ok", "a scrape")
        assert (store.pool_config(POOL) or {}).get("pool_fallback") is False
        cfg.write_text(CONFIG_YAML.format(url=redis_url, fallback="true"))
        await _until(lambda: (store.pool_config(POOL) or {}).get("pool_fallback") is True, "the reload")
        await e.admin("/mode", {"mode": "hang"})
        await asyncio.sleep(0.3)  # let a cycle start and hang on the 60 s timeout
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=5) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        errlog.close()
    log = (workdir / "stderr.log").read_text()
    assert "scraper stopped" in log and "proc-key-xyz" not in log
