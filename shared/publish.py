"""Publishing the routing part of a loaded config to Redis, so API replicas need nothing but the Redis URL.

Every process started with `--config` publishes at start, after each valid reload and when Redis comes back
empty; the documents are deterministic, so several publishers of the same file write the same bytes. Secrets are
never published.

Publishers are ordered by the config's `generation` (the file's inode change time when it was read): a process
still running an older file (its watcher has not reached the change yet, or it runs from a stale copy) never
overwrites the config of a newer file, and so never deletes the keys of pools that only the newer file has.
"""

from __future__ import annotations

import hashlib
import os
import socket

import orjson
from loguru import logger

from llmsched.shared.config_model import Config, PoolConfig
from llmsched.shared.documents import RoutingConfig
from llmsched.shared.store import Store


def pool_routing_doc(config: Config, pool: PoolConfig) -> RoutingConfig:
    """What a decision and a scoring step need to know about one pool."""
    mode = config.mode
    return {
        "name": pool.name,
        "partition": pool.partition,
        "engine_type": pool.engine_type,
        "pool_fallback": pool.fallback.pool_fallback,
        "member_running_req_threshold": pool.fallback.member_running_req_threshold,
        "member_waiting_queue_threshold": pool.fallback.member_waiting_queue_threshold,
        "stale_after": config.scheduler.effective_stale_after,
        "herd_control": config.scheduler.herd_control,
        "mode": mode.name if mode else None,
        "weights": mode.weights() if mode else None,
    }


def routing_docs(config: Config) -> dict[str, RoutingConfig]:
    return {pool.key: pool_routing_doc(config, pool) for pool in config.pools}


def config_version(docs: dict[str, RoutingConfig]) -> str:
    return hashlib.sha256(orjson.dumps(docs, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def publish_config(store: Store, config: Config, publisher: str) -> str:
    """Write the config's pools to Redis; returns the version Redis now holds (a newer file's, if one is there)."""
    docs = routing_docs(config)
    version = config_version(docs)
    who = f"{publisher}@{socket.gethostname()}:{os.getpid()}"
    if store.publish_pools(docs, version, config.source, who, config.generation):
        return version
    held = store.config_version() or "?"
    logger.warning(
        "{}: not publishing config version {} of {}: Redis holds version {} of a newer file; this process takes "
        "that file at its next config check",
        publisher,
        version,
        config.source or "(no file)",
        held,
    )
    return held
