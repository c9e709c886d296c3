"""A Redis of the test's own, to break on purpose: stop it, pause it (SIGSTOP), slow it down (DEBUG SLEEP), or
start it again empty on the same port. Built on the Redis processes of tests/shared/redis_servers.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.shared.redis_servers import RedisProc


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
