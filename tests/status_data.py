"""Redis contents for the status views (page, `llmsched status`): two pools as the collectors and scorer leave them,
with a member disabled on BIG-IP, a failing scrape and a BIG-IP read error."""

from __future__ import annotations

import time

from llmsched.scorer.step import score_pool
from llmsched.shared.config_model import Config, ModeConfig, PoolConfig, SchedulerConfig
from llmsched.shared.members import Member
from llmsched.shared.publish import publish_config
from llmsched.shared.store import Store

BIGIP_ERROR = "pool /Common/llm_pool: no answer from 10.9.9.9:443 within 10 s"
SCRAPE_ERROR = "GET http://10.0.0.3:8000/metrics: connection refused"
HEALTHY = ("10.0.0.1:8000", "10.0.0.2:8000")
DISABLED = "10.0.0.4:8000"
FAILING = "10.0.0.3:8000"


def _member(text: str, **fields) -> Member:
    address, port = text.rsplit(":", 1)
    return Member(address=address, port=int(port), name=text, **fields)


def seed_status(store: Store, now: float | None = None) -> None:
    """`llm_pool:Common` (4 members: 2 healthy, 1 scrape failing, 1 disabled; BIG-IP read failing since) and
    `other_pool:Common` (1 healthy member)."""
    now = time.time() if now is None else now
    pools = (PoolConfig(name="llm_pool", engine_type="auto"), PoolConfig(name="other_pool", engine_type="sglang"))
    publish_config(
        store,
        Config(
            pools=pools,
            modes=(ModeConfig(name="s1"),),
            source="status test",
            scheduler=SchedulerConfig(stale_after=30.0),
        ),
        "test",
    )
    members = [
        _member(HEALTHY[0]),
        _member(HEALTHY[1], ratio=2),
        _member(FAILING),
        _member(DISABLED, session="user-disabled"),
    ]
    store.set_members(
        "llm_pool:Common",
        {"fetched_at": now - 20, "members": [m.to_dict() for m in members], "error": BIGIP_ERROR, "error_at": now - 1},
    )
    ok = {
        "status": "ok",
        "error": None,
        "engine": "vllm",
        "detected_variant": "vllm",
        "detection_status": "ok",
        "scraped_at": now - 0.5,
    }
    store.set_metrics(
        "llm_pool:Common",
        {
            HEALTHY[0]: {**ok, "metrics": {"waiting_queue": 2.0, "cache_usage": 0.31, "running_req": 12.0}},
            HEALTHY[1]: {**ok, "metrics": {"waiting_queue": 9.0, "cache_usage": 0.77, "running_req": 40.0}},
            FAILING: {
                "status": "error",
                "error": SCRAPE_ERROR,
                "metrics": {},
                "engine": "vllm",
                "detected_variant": "vllm",
                "detection_status": "failed",
                "scraped_at": now - 0.5,
            },
            DISABLED: {
                **ok,
                "engine": "sglang",
                "detected_variant": "sglang",
                "metrics": {"waiting_queue": 0.0, "cache_usage": 0.05, "running_req": 1.0},
            },
        },
    )
    store.set_members(
        "other_pool:Common",
        {"fetched_at": now, "members": [_member("10.1.0.1:30000").to_dict()], "error": None, "error_at": None},
    )
    store.set_metrics(
        "other_pool:Common",
        {
            "10.1.0.1:30000": {
                **ok,
                "engine": "sglang",
                "detected_variant": "sglang",
                "metrics": {"waiting_queue": 1.0, "cache_usage": 0.5, "running_req": 3.0},
            }
        },
    )
    score_pool(store, "llm_pool:Common", now)
    score_pool(store, "other_pool:Common", now)
