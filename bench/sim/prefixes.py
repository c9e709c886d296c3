"""Shared prompt prefixes and multi-turn sessions: what a prompt is made of, its cache blocks and fingerprints,
and the shared prefix index the API replicas keep (docs/routing.md "Prefix-aware routing").

A prompt is a chain of segments, each a run of tokens with an id of its own: a prefix group's shared start
(a system prompt, a RAG document), a session's earlier messages and answers, the request's own new part. A
segment's id fixes every segment before it (a message belongs to one session, whose chain is fixed), so the
content of the first n tokens is identified by (id of the segment holding token n-1, n): two prompts agree on
their first n tokens exactly when those pairs are equal. That is what a chained hash gives the real systems:
* vLLM's automatic prefix caching hashes 16-token blocks, each hash covering every token before it
  (`BLOCK_TOKENS`, the engine side: bench/sim/engine.py);
* the iRule fingerprints 512-byte blocks of the request body, chained the same way, at most 64 of them
  (deploy/f5/README.md section 6). At ~4 bytes per token of JSON text a fingerprint covers `FP_TOKENS` tokens.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from llmsched.shared.prefix_index import leading_run

BLOCK_TOKENS = 16  # vLLM's default block size
FP_TOKENS = 128  # one 512-byte fingerprint block of JSON text, at ~4 bytes per token
FP_MAX = 64  # fingerprints per request (the iRule's cap: 32 KB of body)
INDEX_TTL = 600.0  # s an index entry lives without being recorded again
_SHIFT = 20  # block index bits in a block id (2**20 blocks of 16 tokens: prompts up to 16M tokens)

Segments = tuple[tuple[int, int], ...]  # ((segment id, tokens), ...), in prompt order


def chain_ids(segments: Segments, size: int, limit: int | None = None) -> tuple[int, ...]:
    """Ids of the prompt's full `size`-token blocks, each covering every token before it (at most `limit`)."""
    total = sum(n for _, n in segments)
    count = total // size if limit is None else min(limit, total // size)
    ids = []
    seg, seg_end = 0, segments[0][1] if segments else 0
    for k in range(count):
        last = size * (k + 1) - 1
        while last >= seg_end:
            seg += 1
            seg_end += segments[seg][1]
        ids.append(segments[seg][0] << _SHIFT | k)
    return tuple(ids)


def fingerprints(segments: Segments) -> tuple[int, ...]:
    """What the iRule sends in `prefix` for this prompt (as ids: the simulator does not hash text)."""
    return chain_ids(segments, FP_TOKENS, FP_MAX)


@dataclass(frozen=True)
class Prefixes:
    """`workload.prefixes`: every request starts with one of `groups` shared prefixes."""

    groups: int
    median: float
    sigma: float
    popularity: str = "uniform"  # uniform | zipf
    zipf_s: float = 1.1

    def validate(self) -> None:
        if self.groups < 1:
            raise ValueError("workload.prefixes.groups: must be >= 1")
        if self.popularity not in ("uniform", "zipf"):
            raise ValueError(f"workload.prefixes.popularity: must be uniform or zipf, not {self.popularity!r}")

    def lengths(self, rng: random.Random) -> list[int]:
        """Each group's prefix length in tokens (drawn once per run)."""
        return [max(1, int(rng.lognormvariate(math.log(self.median), self.sigma))) for _ in range(self.groups)]

    def chooser(self) -> list[float]:
        """Cumulative popularity of the groups, for `pick`."""
        weights = [1.0 if self.popularity == "uniform" else 1.0 / (g + 1) ** self.zipf_s for g in range(self.groups)]
        total, acc, out = sum(weights), 0.0, []
        for w in weights:
            acc += w / total
            out.append(acc)
        return out

    @staticmethod
    def pick(cumulative: list[float], rng: random.Random) -> int:
        return min(bisect.bisect_left(cumulative, rng.random()), len(cumulative) - 1)


@dataclass(frozen=True)
class Sessions:
    """`workload.sessions`: a session sends `turns` requests (geometric, this mean), each `think_time`
    (exponential, this mean) after the previous answer; each prompt repeats the previous one and its answer."""

    turns_mean: float
    think_mean: float

    def validate(self) -> None:
        if self.turns_mean < 1:
            raise ValueError("workload.sessions.turns.mean: must be >= 1")

    def turns(self, rng: random.Random) -> int:
        n = 1
        while rng.random() >= 1.0 / self.turns_mean:
            n += 1
        return n


@dataclass(frozen=True)
class Turn:
    own: int  # tokens of the new message
    output: int  # tokens of the answer
    think: float  # s between the previous answer and this message (0 for the first turn)


@dataclass(frozen=True)
class Conversation:
    """One client's requests: a session's turns, or a single request (one turn). `first` is the segment id of
    its first own segment; turn t's message is segment first + 2t, its answer first + 2t + 1."""

    group: int  # prefix group, -1 for none
    group_tokens: int
    first: int
    turns: tuple[Turn, ...]

    def segments(self, turn: int) -> Segments:
        """Turn `turn`'s prompt: the group prefix, every earlier message and answer, its own message."""
        out: list[tuple[int, int]] = [(self.group + 1, self.group_tokens)] if self.group >= 0 else []
        for t in range(turn):
            out += [(self.first + 2 * t, self.turns[t].own), (self.first + 2 * t + 1, self.turns[t].output)]
        out.append((self.first + 2 * turn, self.turns[turn].own))
        return tuple(out)


class PrefixIndex:
    """The prefix index shared by every API replica (Redis in production): per member, the fingerprints it was
    sent, in an LRU bounded by its KV capacity in fingerprint blocks, each entry living `ttl` after its last
    record. A replica records a decision's fingerprints for the chosen member after answering (not waited
    for), so they land `delay` later and decisions closer together do not see each other."""

    def __init__(self, ids: Sequence[str], capacity: Sequence[int], delay: float, ttl: float = INDEX_TTL) -> None:
        self.entries: dict[str, OrderedDict[int, float]] = {mid: OrderedDict() for mid in ids}
        self.capacity = dict(zip(ids, capacity))
        self.delay = delay
        self.ttl = ttl
        self.pending: deque[tuple[float, str, tuple[int, ...]]] = deque()

    def record(self, now: float, member: str, fps: tuple[int, ...]) -> None:
        if fps:
            self.pending.append((now + self.delay, member, fps))

    def matched(self, now: float, fps: tuple[int, ...]) -> dict[str, int]:
        """member id -> how many of the leading fingerprints the index believes it holds (0s left out)."""
        self._land(now)
        out = {}
        for mid, entries in self.entries.items():
            n = leading_run(entries, fps, now)  # entries hold expiry times
            if n:
                out[mid] = n
        return out

    def _land(self, now: float) -> None:
        pending = self.pending
        while pending and pending[0][0] <= now:
            at, mid, fps = pending.popleft()
            entries, expiry = self.entries[mid], at + self.ttl
            for fp in reversed(fps):  # the first fingerprint is the most recently used: evicted last
                entries[fp] = expiry
                entries.move_to_end(fp)
            while len(entries) > self.capacity[mid]:
                entries.popitem(last=False)
