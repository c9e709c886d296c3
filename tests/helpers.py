"""Test helpers: build and store pools the way the collectors would, against a real Redis."""
from __future__ import annotations

import time

from cli.seed import seed_pool
from shared.config_model import FallbackConfig, ModeConfig, PoolConfig
from shared.members import Member
from shared.store import Store, connect


def make_store(url: str, namespace: str = "llmsched") -> Store:
    return Store(connect(url, socket_timeout=2.0), namespace)


def seed(store: Store, members: dict[str, dict], pool: str = "p1", partition: str = "Common",
         mode: str = "s1", fallback: FallbackConfig | None = None, stale_after: float = 60.0,
         now: float | None = None, herd_control: bool = True, **member_fields) -> dict:
    """Seed one pool: `members` maps "ip:port" to its metrics dict."""
    ms = []
    for text in members:
        address, _, port = text.rpartition(":")
        ms.append(Member(address=address, port=int(port), name=text, **member_fields))
    cfg = PoolConfig(name=pool, partition=partition, engine_type="vllm", fallback=fallback or FallbackConfig())
    return seed_pool(store, cfg, ModeConfig(name=mode, w_a=0.5, w_b=0.5), ms, list(members.values()),
                     stale_after, time.time() if now is None else now, herd_control)
