"""Herd-control dispatch counts, written without waiting for Redis.

Each picked member must be counted in Redis at once (shared/routing/herd.py: the next decision, on any replica,
reads the counts). Waiting for the reply of one more command per decision costs the API about a quarter of its
throughput (docs/benchmarks.md), and the reply carries nothing we need. So each worker keeps one dedicated Redis
connection with replies switched off (`CLIENT REPLY OFF`) and only sends `HINCRBY` + `EXPIRE` on it: one send,
no round trip, and Redis applies the commands in order before it reads the next decision from any client that
comes after. A count that cannot be sent (Redis down) is dropped: the next scrape resets the counts anyway.
"""

from __future__ import annotations

import os
import time

import redis
from loguru import logger

from llmsched.shared.store import Store

EXPIRE_EVERY_S = 1.0


class DispatchRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._conn: redis.Connection | None = None
        self._owner_pid: int | None = None  # a connection must never be shared by forked workers
        self._expire_due: dict[str, float] = {}

    def record(self, pool_key: str, member_id: str, ttl_s: float) -> None:
        key = self.store.keys.pool_dispatch(pool_key)
        commands = [("HINCRBY", key, member_id, 1)]
        now = time.monotonic()
        if now >= self._expire_due.get(pool_key, 0.0):
            # The TTL only has to outlive a stopped scraper's last counts: refreshing it once a second is enough.
            commands.append(("EXPIRE", key, max(1, int(ttl_s + 0.999))))
            self._expire_due[pool_key] = now + EXPIRE_EVERY_S
        try:
            conn = self._connection()
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except (redis.RedisError, OSError) as exc:
            self._drop()
            logger.debug("dispatch of {} not counted: {}", pool_key, exc)

    def _connection(self) -> redis.Connection:
        if self._conn is None or self._owner_pid != os.getpid():
            conn = self.store.client.connection_pool.make_connection()
            conn.connect()
            conn.send_command("CLIENT", "REPLY", "OFF")
            self._conn, self._owner_pid = conn, os.getpid()
            self._expire_due = {}
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except (redis.RedisError, OSError):
                pass
        self._conn = None
