"""Bounded: at most `limit` jobs at once across every caller, results in order, failures and cancellation per caller."""

from __future__ import annotations

import asyncio

import pytest

from llmsched.collectors.bounded import Bounded


class Probe:
    """Jobs that wait until released, recording how many ran at once and in which order they started."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: list[object] = []
        self.gate = asyncio.Event()

    async def job(self, item: object) -> object:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append(item)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        if item == "boom":
            raise ValueError("boom")
        return item


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_no_more_than_the_limit_run_at_once_across_callers_and_results_keep_their_order():
    bounded, probe = Bounded(3), Probe()
    a = asyncio.ensure_future(bounded.map(probe.job, list(range(10))))
    b = asyncio.ensure_future(bounded.map(probe.job, list("abcdef")))
    await settle()
    assert probe.running == 3 and bounded.running == 3
    probe.gate.set()
    assert await a == list(range(10)) and await b == list("abcdef")
    assert probe.most == 3
    assert probe.started[:10] == list(range(10))  # in the order submitted


async def test_a_failing_job_fails_its_own_caller_only():
    bounded, probe = Bounded(2), Probe()
    bad = asyncio.ensure_future(bounded.map(probe.job, ["x", "boom", "y", "z"]))
    good = asyncio.ensure_future(bounded.map(probe.job, [1, 2, 3]))
    await settle()
    probe.gate.set()
    with pytest.raises(ValueError, match="boom"):
        await bad
    assert await good == [1, 2, 3]


async def test_cancelling_a_caller_cancels_its_running_jobs_and_drops_its_queued_ones():
    bounded, probe = Bounded(2), Probe()
    doomed = asyncio.ensure_future(bounded.map(probe.job, ["d1", "d2", "d3", "d4"]))
    other = asyncio.ensure_future(bounded.map(probe.job, ["o1", "o2"]))
    await settle()
    assert probe.started == ["d1", "d2"]
    doomed.cancel()
    await settle()
    assert probe.running == 2 and probe.started == ["d1", "d2", "o1", "o2"]  # d3, d4 never started
    probe.gate.set()
    assert await other == ["o1", "o2"]
    assert doomed.cancelled()


async def test_a_lowered_limit_applies_to_the_jobs_still_queued():
    bounded, probe = Bounded(4), Probe()
    first = asyncio.ensure_future(bounded.map(probe.job, list(range(4))))
    await settle()
    bounded.limit = 1
    probe.gate.set()
    await first
    probe.gate.clear()
    probe.most = 0
    second = asyncio.ensure_future(bounded.map(probe.job, list(range(5))))
    await settle()
    assert probe.running == 1
    probe.gate.set()
    assert await second == list(range(5))
    assert probe.most == 1


async def test_no_items_need_no_worker():
    assert await Bounded(2).map(Probe().job, []) == []
