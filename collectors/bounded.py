"""Bounded concurrency for the scraper's many small jobs: at most `limit` run at once, counted across every caller.

One task per job behind a semaphore costs a task per job and, once more jobs wait than run, a future and a wake-up
per waiting job. Here at most `limit` worker tasks take the jobs in the order they were submitted, and each
caller waits on one future for all of its jobs (docs/benchmarks.md has the difference).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Batch(Generic[T, R]):
    __slots__ = ("fn", "items", "results", "left", "done")

    def __init__(self, fn: Callable[[T], Awaitable[R]], items: Sequence[T], done: asyncio.Future[list[R]]) -> None:
        self.fn, self.items, self.done = fn, items, done
        self.results: list[Any] = [None] * len(items)
        self.left = len(items)


class Bounded:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # may be changed at any time (config reload): applies as workers are started
        self._queue: deque[tuple[_Batch, int]] = deque()
        self._workers: dict[asyncio.Task, _Batch | None] = {}  # worker -> the batch of the job it runs

    async def map(self, fn: Callable[[T], Awaitable[R]], items: Sequence[T]) -> list[R]:
        """[await fn(item) for item in items], at most `limit` at once among all calls in flight; results in
        order. An exception of one job fails this call (its jobs not started yet are dropped); cancelling the call
        cancels its jobs, started or not."""
        if not items:
            return []
        batch: _Batch[T, R] = _Batch(fn, items, asyncio.get_running_loop().create_future())
        self._queue.extend((batch, i) for i in range(len(items)))
        self._spawn()
        try:
            return await batch.done
        except BaseException:
            if not batch.done.done():
                batch.done.cancel()
            for worker, running in self._workers.items():
                if running is batch:
                    worker.cancel()
            raise

    @property
    def running(self) -> int:
        return sum(1 for batch in self._workers.values() if batch is not None)

    def _spawn(self) -> None:
        for _ in range(min(self.limit - len(self._workers), len(self._queue))):
            worker = asyncio.ensure_future(self._work())
            self._workers[worker] = None

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        try:
            while self._queue:
                if len(self._workers) > self.limit:
                    return  # the limit was lowered: fewer workers from now on
                batch, i = self._queue.popleft()
                if batch.done.done():
                    continue  # its caller failed or was cancelled
                self._workers[me] = batch
                try:
                    result = await batch.fn(batch.items[i])
                except asyncio.CancelledError:
                    if not batch.done.done():
                        raise  # not its caller's cancellation: this worker is being stopped
                    me.uncancel()  # the caller gave up on this job; keep serving the others
                    continue
                except Exception as exc:
                    if not batch.done.done():
                        batch.done.set_exception(exc)
                    continue
                finally:
                    self._workers[me] = None
                batch.results[i] = result
                batch.left -= 1
                if batch.left == 0 and not batch.done.done():
                    batch.done.set_result(batch.results)
        finally:
            del self._workers[me]
            if any(not batch.done.done() for batch, _ in self._queue):
                self._spawn()  # a stopped worker leaves jobs that someone still waits for
