"""Test helpers: build and store pools the way the collectors would, against a real Redis."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from llmsched.cli.seed import seed_pool
from llmsched.shared.config_model import FallbackConfig, ModeConfig, PoolConfig
from llmsched.shared.members import Member
from llmsched.shared.store import Store, connect

REPO = Path(__file__).resolve().parents[1]


def make_store(url: str, namespace: str = "llmsched") -> Store:
    return Store(connect(url, socket_timeout=2.0), namespace)


def seed(
    store: Store,
    members: dict[str, dict],
    pool: str = "p1",
    partition: str = "Common",
    mode: str = "s1",
    fallback: FallbackConfig | None = None,
    stale_after: float = 60.0,
    now: float | None = None,
    herd_control: bool = True,
    **member_fields,
) -> dict:
    """Seed one pool: `members` maps "ip:port" to its metrics dict."""
    ms = []
    for text in members:
        address, _, port = text.rpartition(":")
        ms.append(Member(address=address, port=int(port), name=text, **member_fields))
    cfg = PoolConfig(name=pool, partition=partition, engine_type="vllm", fallback=fallback or FallbackConfig())
    return seed_pool(
        store,
        cfg,
        ModeConfig(name=mode, w_a=0.5, w_b=0.5),
        ms,
        list(members.values()),
        stale_after,
        time.time() if now is None else now,
        herd_control,
    )


@contextlib.contextmanager
def api_process(redis_url: str, workers: int = 1) -> Iterator[int]:
    """A real `llmsched api` (gunicorn) on a free 127.0.0.1 port; yields the port once it accepts connections."""
    from tests.api.live_api import live_api

    with live_api(redis_url, workers) as (url, _proc):
        yield int(url.rsplit(":", 1)[1])


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, grandchildren), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
