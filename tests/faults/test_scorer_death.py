"""A scorer that dies between taking a scoring job and clearing the pool's pending flag.

Real processes: `llmsched up` with two scorers, the emulated BIG-IP and engines, a Redis of the test's own. Both
scorers are frozen (SIGSTOP) while they wait in rq's blocking dequeue (BLMOVE). Redis still hands the scraper's
next job to one of them: the job leaves the queue, the pool's pending flag stays set, and the frozen scorer never
runs it. That scorer (found by its Redis client: the one whose BLMOVE returned) is killed with SIGKILL, exactly
between dequeue and clearing the flag; the other resumes. The pool must be rescored within one scrape interval of
the death and decisions must keep picking members; before the fix the flag swallowed every request for its 30 s
TTL.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import redis

from llmsched.shared.scoring_queue import scoring_queue
from llmsched.shared.store import Store

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.emulated import PARTITION, POOL
from tests.faults.harness import cmdline, wait_for
from tests.helpers import descendants

SCRAPE_MS = 500
INTERVAL_S = SCRAPE_MS / 1000
POOL_KEY = f"{POOL}:{PARTITION}"


def scorer_pids(up_pid: int) -> list[int]:
    return sorted(p for p in descendants(up_pid) if "llmsched.cli.main scorer --config" in cmdline(p))


def socket_owner(local_port: int, pids: list[int]) -> int | None:
    """Which of `pids` owns the TCP socket bound to 127.0.0.1:`local_port` (via /proc: port -> inode -> fd)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == local_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return pid
    return None


def scorer_holding_a_job(client: redis.Redis, pids: list[int]) -> int | None:
    """The pid of a frozen scorer whose BLMOVE returned a job (its connection is no longer blocked), or None while
    every one still waits."""
    for entry in client.client_list():
        if entry.get("cmd") == "blmove" and "b" not in entry.get("flags", ""):
            return socket_owner(int(entry["addr"].rpartition(":")[2]), pids)
    return None


@pytest.mark.faults
def test_a_scorer_killed_after_taking_a_job_does_not_stall_the_pool(lab: Lab, record_figure: RecordFigure) -> None:
    stack = lab.stack(scrape_ms=SCRAPE_MS, up_args=("--scorers", "2"))
    store = Store(redis.Redis.from_url(stack.redis.url, socket_timeout=2.0), "llmsched")
    flag = store.keys.pool_scoring_pending(POOL_KEY)
    pids = scorer_pids(stack.up.pid)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        victim = wait_for("a frozen scorer to be handed a job", lambda: scorer_holding_a_job(store.client, pids), 5)
        taken = store.client.get(flag)
        assert taken and taken.decode() not in [
            j.decode() for j in store.client.lrange(scoring_queue(store).key, 0, -1)
        ]
        os.kill(victim, signal.SIGKILL)
        died = time.time()
    finally:
        for pid in pids:
            if pid != victim:
                os.kill(pid, signal.SIGCONT)
    rescored = wait_for(
        "a snapshot computed after the death",
        lambda: (s := store.scores(POOL_KEY)) and s["computed_at"] > died and s["computed_at"],
        35,
        every=0.01,
    )
    after = rescored - died
    picks = stack.picks(40)
    record_figure(
        "scorer killed between dequeue and clearing the pending flag",
        "pool rescored within one scrape interval of the death",
        after / INTERVAL_S,
        "intervals",
        figure=f"{after:.2f} s, {picks['none']} none of 40",
    )
    stack.assert_picks(picks)
    assert after <= 2 * INTERVAL_S  # the next request comes within one interval; the margin is for a busy host


@pytest.mark.faults
def test_a_crash_looping_scorer_is_back_before_the_pools_turn_stale(lab: Lab, record_figure: RecordFigure) -> None:
    """The only scorer crashes (SIGKILL) half a second after each restart has scored once, 6 times in a row. `up`
    restarts it within a third of stale_after each time (the doubling backoff used to reach 4, 8, 16 s), so
    decisions keep picking members. Measured: the longest run of `none` answers while BIG-IP asks every 20 ms."""
    stack = lab.stack(scrape_ms=SCRAPE_MS)
    store = Store(redis.Redis.from_url(stack.redis.url, socket_timeout=2.0), "llmsched")
    stop = threading.Event()
    answers: list[tuple[float, str]] = []

    def ask() -> None:
        while not stop.is_set():
            try:
                answers.append((time.monotonic(), stack.select(timeout=1.0).text))
            except OSError:
                answers.append((time.monotonic(), "error"))
            time.sleep(0.02)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    killed: list[int] = []
    try:
        for _ in range(6):
            pid = wait_for("a scorer", lambda: [p for p in scorer_pids(stack.up.pid) if p not in killed], 30)[0]
            spawned = time.time()
            wait_for(
                "the restarted scorer to score",
                lambda since=spawned: (s := store.scores(POOL_KEY)) and s["computed_at"] > since,
                30,
            )
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        wait_for("a scorer after the last crash", lambda: [p for p in scorer_pids(stack.up.pid) if p not in killed], 30)
        time.sleep(3)
    finally:
        stop.set()
        asker.join(5)
    longest, run_from = 0.0, None
    for at, text in answers:
        if text in stack.members:
            run_from = None
        else:
            run_from = at if run_from is None else run_from
            longest = max(longest, at - run_from)
    delays = re.findall(r"scorer exited \(signal 9\) after [\d.]+ s; restart #\d+ in ([\d.]+) s", stack.output())
    misses = sum(text not in stack.members for _, text in answers)
    record_figure(
        "scorer crash-looping (6 SIGKILLs, 0.5 s after each restart scored)",
        "restarted within stale_after/3; pools never stale",
        longest,
        "s longest none run",
        figure=f"{misses} none of {len(answers)}; restart delays {delays}",
    )
    assert len(delays) >= 6
    # Each restart comes within stale_after/3 (1 s); a Python process then needs 1-2 s on a busy 2-core host to
    # start and score, so a short run of `none` may remain (--scorers 2 removes it). The doubling backoff: 14.7 s.
    assert longest < 2.0
