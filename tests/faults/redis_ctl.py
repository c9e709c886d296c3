"""A Redis of the test's own, to break on purpose: stop it, pause it (SIGSTOP), slow it down (DEBUG SLEEP), or
start it again empty on the same port. Built on the Redis processes of tests/shared/redis_servers.py, which also
give the Sentinel group (master, replica, three Sentinels) of the failover test."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.shared.redis_servers import RedisProc

MASTER_NAME = "faultsmaster"


class RedisServer(RedisProc):
    """A redis-server (no persistence, DEBUG allowed locally) that remembers whether it is paused."""

    paused = False

    def stop(self) -> None:
        """kill -9: everything in it is lost, as in a crash."""
        self.kill()
        self.paused = False

    def pause(self) -> None:
        super().pause()
        self.paused = True

    def resume(self) -> None:
        super().resume()
        self.paused = False

    @contextmanager
    def slow(self, block_s: float = 0.2, gap_s: float = 0.001) -> Iterator[None]:
        """Redis busy with `DEBUG SLEEP block_s` back to back: every command waits up to block_s."""
        stop = threading.Event()

        def hog() -> None:
            client = self.client(block_s + 5)
            while not stop.is_set():
                client.execute_command("DEBUG", "SLEEP", str(block_s))
                time.sleep(gap_s)
            client.close()
        thread = threading.Thread(target=hog, name="redis-slow", daemon=True)
        thread.start()
        time.sleep(0.05)
        try:
            yield
        finally:
            stop.set()
            thread.join(block_s + 10)


class SentinelGroup:
    """A master, one replica and three Sentinels (quorum 2, down after 1 s) on 127.0.0.1."""

    def __init__(self) -> None:
        self.master = RedisProc().start()
        self.replica = RedisProc(replica_of=self.master.port).start()
        self.sentinels = [RedisProc(sentinel_of=(MASTER_NAME, self.master.port)).start() for _ in range(3)]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.sentinels]

    def current_master_port(self) -> int:
        _host, port = self.sentinels[0].client().execute_command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
        return int(port)

    def ready(self) -> bool:
        """Every Sentinel knows the replica and the two other Sentinels: a failover can be agreed on."""
        for sentinel in self.sentinels:
            client = sentinel.client()
            if len(client.execute_command("SENTINEL", "sentinels", MASTER_NAME)) < 2 or \
                    not client.execute_command("SENTINEL", "replicas", MASTER_NAME):
                return False
        return True

    def close(self) -> None:
        for proc in (*self.sentinels, self.replica, self.master):
            proc.close()
