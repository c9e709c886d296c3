"""`make bench-api`'s `--stack` mode: the connection-per-request figure with a whole `llmsched up` stack running.

What `llmsched demo` starts (four emulated engines of different kinds, an emulated BIG-IP whose pool holds them,
`llmsched up --workers 2` with its private Redis, poller, scraper scraping every second and scorer), without the
demo's traffic: once the pool is scored, wrk sends iRule-style selects offering the pool's members, one new TCP
connection each, while the stack keeps polling, scraping and scoring. The reference is measured in the same run:
the bare WSGI hello-world under `gunicorn -w 2` (sync), started by the bench beside the stack. Every answer that
is `none` is counted (a healthy stack must answer members).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

from llmsched.bench.processes import free_port, stopping, tree_cpu_seconds, wait_port


def stack_run(args: argparse.Namespace, wrk_line, measured_wrk, run_wrk) -> list[str]:
    """The printed lines: the API under the stack, the hello-world, and the stack's whole CPU per request."""
    from llmsched.cli import demo
    from llmsched.cli.up import child_environment

    workdir = tempfile.mkdtemp(prefix="llmsched-bench-stack-")
    env = child_environment(None)
    env.pop("REDIS_URL", None)
    env[demo.PASSWORD_ENV] = secrets.token_urlsafe(12)
    procs = demo.Processes(env, workdir)
    try:
        members, api, up = demo.start_stack(procs, workdir)
        if not demo.wait_until_scored(api, up):
            raise SystemExit(f"the stack did not score {demo.POOL} in time; logs kept in {workdir}")
        api_port = int(api.rsplit(":", 1)[1])
        payload = json.dumps({"pool_name": demo.POOL, "partition": demo.PARTITION, "members": list(members)})
        hello_port = free_port()
        with stopping() as register:
            hello = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{hello_port}"]
            hello += ["--log-level", "warning", "llmsched.bench.hello_wsgi:app"]
            hello_proc = register(subprocess.Popen(hello, env={**os.environ}))
            wait_port(hello_port, hello_proc, "hello-world")
            ref = measured_wrk(hello_port, hello_proc, True, args)
            run_wrk(api_port, True, 2, args.connections, args.threads, payload)
            before = tree_cpu_seconds(up.pid)
            r = run_wrk(api_port, True, args.seconds, args.connections, args.threads, payload)
            stack_us = (tree_cpu_seconds(up.pid) - before) / max(1, r["requests"]) * 1e6
        return [
            f"whole `llmsched up` stack ({len(members)} emulated engines scraped every second, emulated BIG-IP "
            f"polled, scorer, 2 API workers), connection per request:",
            wrk_line("  API under the running stack", r, ref) + f" (the whole stack's CPU: {stack_us:.0f} us/request)",
            wrk_line("  hello-world, sync -w 2 (same run)", ref),
            f"    {r['command']}",
        ]
    finally:
        procs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
