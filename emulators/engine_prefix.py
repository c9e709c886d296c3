"""The prefix (KV) cache of one emulated engine: vLLM's automatic prefix caching, reduced to what routing sees.

A prompt is cut into blocks of `block_size` tokens (4 characters of prompt text per token, as everywhere in the
emulator; token ids when the prompt is pre-tokenized). Block i is known by a chained hash that covers every
block before it, so two prompts share cached blocks exactly as far as they share a prefix, as in vLLM.

Blocks live in the engine's KV pool:
* a block that a running sequence holds is *pinned* (reference-counted, shared by every running sequence whose
  prompt starts with it, counted once in the pool) and cannot be evicted;
* when its last holder finishes or is preempted it stays cached but *free*, in LRU order, and it is evicted
  as soon as the pool needs the room (vLLM frees a request's blocks tail first, so its first blocks, the ones
  other prompts most likely share, are evicted last).
Only full blocks are cached, and at least one prompt token is always computed (a prompt that is entirely
cached still runs its last token, as vLLM does).
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Collection, Sequence

CHARS_PER_TOKEN = 4


def block_hashes(prompt: str | Sequence[int], block_size: int) -> tuple[bytes, ...]:
    """Chained hashes of the prompt's full blocks: text in `block_size * 4`-character blocks, ids in `block_size`."""
    if isinstance(prompt, str):
        # Characters, not bytes, make the tokens; slicing the text keeps multi-byte characters whole.
        unit = block_size * CHARS_PER_TOKEN
        chunks = [
            prompt[i * unit : (i + 1) * unit].encode("utf-8", "surrogatepass") for i in range(len(prompt) // unit)
        ]
    else:
        chunks = [
            ",".join(str(t) for t in prompt[i * block_size : (i + 1) * block_size]).encode()
            for i in range(len(prompt) // block_size)
        ]
    out, digest = [], b""
    for chunk in chunks:
        digest = hashlib.sha1(digest + chunk).digest()
        out.append(digest)
    return tuple(out)


class PrefixCache:
    """Cached blocks of one engine: pinned ones (held by running sequences) and free ones in LRU order."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.pinned: collections.Counter[bytes] = collections.Counter()
        self.free: collections.OrderedDict[bytes, None] = collections.OrderedDict()  # oldest first
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.pinned) + len(self.free)

    def matched_blocks(self, hashes: Sequence[bytes], computing: Collection[bytes] = ()) -> int:
        """How many leading blocks of a prompt are cached (pinned or free); blocks still `computing` (pinned in
        this very step by another prompt) are not cached yet."""
        n = 0
        for h in hashes:
            if (h not in self.pinned and h not in self.free) or h in computing:
                break
            n += 1
        return n

    def cached_tokens(self, hashes: Sequence[bytes], prompt_tokens: int, computing: Collection[bytes] = ()) -> int:
        """Prompt tokens served from the cache: the matched full blocks, but never the whole prompt."""
        most = ((prompt_tokens - 1) // self.block_size) * self.block_size
        return min(self.matched_blocks(hashes, computing) * self.block_size, max(0, most))

    def new_blocks(self, hashes: Sequence[bytes]) -> int:
        """Blocks of this prompt no running sequence holds yet: the ones that would take room in the pool."""
        return sum(1 for h in hashes if h not in self.pinned)

    def pin(self, hashes: Sequence[bytes]) -> None:
        """A sequence starts running: it holds every full block of its prompt (cached now, or computed now)."""
        for h in hashes:
            self.free.pop(h, None)
            self.pinned[h] += 1

    def unpin(self, hashes: Sequence[bytes]) -> int:
        """A sequence stops running; returns how many blocks became free (no longer held by anyone)."""
        freed = 0
        for h in reversed(hashes):  # tail first: the prompt's first blocks become the most recently used
            self.pinned[h] -= 1
            if self.pinned[h] <= 0:
                del self.pinned[h]
                self.free[h] = None
                self.free.move_to_end(h)
                freed += 1
        return freed

    def fit(self, room_tokens: int) -> None:
        """Evict least recently used free blocks until the free ones fit into `room_tokens` of the pool."""
        keep = max(0, room_tokens) // self.block_size
        while len(self.free) > keep:
            self.free.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        """Drop every free block (vLLM's reset_prefix_cache); pinned blocks stay with their sequences."""
        self.free.clear()
