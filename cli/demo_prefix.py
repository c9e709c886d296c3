"""The demo's prefix traffic: RAG-style request bodies sharing long documents, fingerprinted exactly as the iRule
does with `prefix_hints 1` (deploy/f5/README.md section 6), and each engine's prefix-cache hit rate per window."""

from __future__ import annotations

import hashlib
import json

from llmsched.collectors.engines import PREFIX_CACHE_NAMES, read_prefix_cache
from llmsched.collectors.prom import parse_exposition

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


DOCUMENTS = 24  # distinct shared prefixes (documents) the clients ask about
BODY_CAP = 32768  # the iRule's largest body cap
BLOCK = 512  # the iRule's fingerprint block in bytes


def fingerprints(body: bytes, cap: int = BODY_CAP) -> list[str]:
    """The iRule's prompt fingerprints of a request body (deploy/f5/README.md section 6, the wire contract)."""
    usable, out, digest = body[: min(cap, BODY_CAP)], [], b""
    for i in range(len(usable) // BLOCK):
        digest = hashlib.sha1(digest + usable[i * BLOCK : (i + 1) * BLOCK]).digest()
        out.append(digest[:8].hex())
    return out


def document(n: int) -> str:
    """A long, stable context (a few thousand bytes) that many requests share, as a RAG document would be."""
    return f"Document {n}. " + " ".join(f"Section {n}.{i}: the scheduler routes requests by load." for i in range(60))


def completion_body(rng) -> bytes:
    """One request body as the client sends it; the same bytes are fingerprinted."""
    prompt = f"{document(rng.randrange(DOCUMENTS))}\nQuestion {rng.randrange(10_000)}: what does it say?"
    return json.dumps({"model": MODEL, "prompt": prompt, "max_tokens": rng.randint(16, 64)}).encode()


class EngineCounters:
    """Each engine's prefix-cache hit rate over the last window, from the token counters on its own /metrics."""

    def __init__(self, members: dict[str, str]) -> None:
        self.members = members
        self.last: dict[str, tuple[float, float]] = {}

    async def window(self, session) -> dict[str, float | None]:
        rates: dict[str, float | None] = {}
        for member, label in self.members.items():
            try:
                async with session.get(f"http://{member}/metrics") as resp:
                    text = await resp.text()
            except Exception:  # an engine being restarted or broken on purpose: no figure this window
                rates[member] = None
                continue
            engine = "sglang" if label.startswith("sglang") else "vllm"
            reading = read_prefix_cache(parse_exposition(text, PREFIX_CACHE_NAMES), engine)
            now = (reading.hits_total or 0.0, reading.queries_total or 0.0)
            before = self.last.get(member, (0.0, 0.0))
            self.last[member] = now
            queried = now[1] - before[1]
            rates[member] = (now[0] - before[0]) / queried if queried > 0 else None
        return rates
