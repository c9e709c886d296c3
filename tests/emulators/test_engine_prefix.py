"""The engine emulator's prefix cache: chained blocks, hits that skip prefill, LRU bounded by the KV pool, and the
metric names vLLM and SGLang expose for it.

The engine core is stepped by hand (admit, decode) so the tests can count tokens without timing anything.
"""

from __future__ import annotations

import aiohttp

from llmsched.emulators.engine_prefix import PrefixCache, block_hashes
from llmsched.emulators.engine_sim import EngineCore, Sequence

from tests.emulators.test_engine_emulator import MODEL, scrape, value

BS = 16
BLOCK_CHARS = BS * 4  # 4 characters per token


def text(blocks: int, seed: str, extra: int = 0) -> str:
    """`blocks` full blocks of text made from `seed`, plus `extra` characters."""
    unit = (seed * BLOCK_CHARS)[:BLOCK_CHARS]
    return unit * blocks + "t" * extra


def seq(prompt: str, max_tokens: int = 1) -> Sequence:
    return Sequence(prompt_tokens=len(prompt) // 4, max_tokens=max_tokens, block_hashes=block_hashes(prompt, BS))


def serve(core: EngineCore, *seqs: Sequence) -> list[int]:
    """Submit the sequences one after another, each run to completion; returns each one's prefilled tokens."""
    prefilled = []
    for s in seqs:
        core.submit(s)
        prefilled.append(core._admit(0.0))
        while s.finish_reason is None:
            core._decode(0.0)
    return prefilled


# ------------------------------------------------------------------ block hashes
def test_prompts_sharing_a_prefix_share_exactly_their_common_full_blocks():
    system = text(5, "You are helpful. ")
    a = block_hashes(system + text(3, "question one "), BS)
    b = block_hashes(system + text(3, "another question "), BS)
    assert len(a) == len(b) == 8
    assert a[:5] == b[:5]
    assert all(x != y for x, y in zip(a[5:], b[5:]))


def test_blocks_are_chained_so_an_equal_block_after_a_difference_does_not_match():
    a = block_hashes(text(1, "x") + text(1, "same"), BS)
    b = block_hashes(text(1, "y") + text(1, "same"), BS)
    assert a[1] != b[1]


def test_only_full_blocks_are_hashed_and_token_ids_are_blocks_of_block_size():
    assert len(block_hashes(text(2, "a", extra=BLOCK_CHARS - 1), BS)) == 2
    assert block_hashes("short", BS) == ()
    ids = list(range(40))
    assert len(block_hashes(ids, BS)) == 2
    assert block_hashes(ids, BS)[0] == block_hashes(ids[:16] + [999] * 16, BS)[0]


# ------------------------------------------------------------------ hits shorten the prefill
def test_a_repeated_prefix_is_not_prefilled_again_and_counts_as_hits():
    core = EngineCore(0, max_running=4, kv_capacity=4096, speed=1.0, block_size=BS)
    system = text(10, "Shared system prompt. ")
    first, second = serve(core, seq(system + text(2, "q1 ")), seq(system + text(2, "q2 ")))
    assert first == 12 * BS  # nothing cached yet: every token is prefilled
    assert second == 2 * BS  # the 10 shared blocks come from the cache
    assert core.counters["prefix_queries"] == 24 * BS
    assert core.counters["prefix_hits"] == 10 * BS
    assert core.last_prefill_hit_rate == 10 / 12


def test_an_identical_prompt_still_computes_its_last_token():
    core = EngineCore(0, max_running=4, kv_capacity=4096, speed=1.0, block_size=BS)
    prompt = text(4, "same ")
    assert serve(core, seq(prompt), seq(prompt)) == [4 * BS, BS]  # the last block is recomputed, as in vLLM


def test_prompts_admitted_in_the_same_step_do_not_hit_each_others_blocks():
    core = EngineCore(0, max_running=4, kv_capacity=4096, speed=1.0, block_size=BS)
    a, b = seq(text(4, "same ") + "x" * 8), seq(text(4, "same ") + "y" * 8)
    core.submit(a)
    core.submit(b)
    assert core._admit(0.0) == 2 * (4 * BS + 2)  # both still compute: neither block was there before the step
    assert core.counters["prefix_hits"] == 0


def test_running_sequences_hold_a_shared_prefix_once_in_the_kv_pool():
    core = EngineCore(0, max_running=4, kv_capacity=4096, speed=1.0, block_size=BS)
    system = text(10, "Shared. ")
    serve(core, seq(system))
    a, b = seq(system + "a" * 40, max_tokens=5), seq(system + "b" * 40, max_tokens=5)
    core.submit(a)
    core.submit(b)
    core._admit(0.0)
    assert core.kv_used == 10 * BS + 2 * 10  # the 10 shared blocks once, each sequence's 10-token tail
    while a.finish_reason is None or b.finish_reason is None:
        core._decode(0.0)
    assert core.kv_used == 0  # released; the blocks stay cached but free


# ------------------------------------------------------------------ LRU bounded by the KV pool
def test_the_cache_is_bounded_by_the_kv_pool_and_evicts_the_least_recently_used():
    core = EngineCore(0, max_running=1, kv_capacity=20 * BS, speed=1.0, block_size=BS)
    old, hot = text(8, "old prompt "), text(8, "hot prompt ")
    serve(core, seq(old), seq(hot))
    assert len(core.prefix) == 16
    serve(core, seq(hot))  # hot is used again: old is now the least recently used
    serve(core, seq(text(8, "newcomer ")))  # needs 8 blocks of room: 16 + 8 > 20, so 4 cached blocks must go
    assert len(core.prefix) <= 20
    assert core.prefix.evictions >= 4
    assert core.prefix.matched_blocks(block_hashes(hot, BS)) == 8  # the recently used prompt survived
    assert core.prefix.matched_blocks(block_hashes(old, BS)) < 8
    assert serve(core, seq(hot)) == [BS]


def test_freed_blocks_are_evicted_tail_first_so_a_shared_start_survives_longest():
    cache = PrefixCache(BS)
    hashes = block_hashes(text(4, "p "), BS)
    cache.pin(hashes)
    assert cache.unpin(hashes) == 4
    cache.fit(2 * BS)  # room for two free blocks
    assert cache.matched_blocks(hashes) == 2  # the first two blocks remain, the tail went


def test_blocks_held_by_running_sequences_are_never_evicted():
    cache = PrefixCache(BS)
    held, done = block_hashes(text(3, "held "), BS), block_hashes(text(3, "done "), BS)
    cache.pin(held)
    cache.pin(done)
    cache.unpin(done)
    cache.fit(0)
    assert cache.matched_blocks(held) == 3 and cache.matched_blocks(done) == 0


# ------------------------------------------------------------------ over HTTP: the engines' metric names
SYSTEM = "You answer questions about the ACME router. " * 40  # ~1.7 K characters, 27 blocks


async def chat(http: aiohttp.ClientSession, base: str, question: str) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    async with http.post(f"{base}/v1/chat/completions", json={"model": MODEL, "messages": messages}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["usage"]["prompt_tokens"] > 400


async def test_vllm_prefix_cache_counters_and_cache_config_follow_real_requests(engine, http):
    base = await engine(kv_capacity=8192)
    await chat(http, base, "How do I reset it?")
    m = await scrape(http, base)
    assert value(m, "vllm:prefix_cache_hits_total") == 0
    queries = value(m, "vllm:prefix_cache_queries_total")
    await chat(http, base, "Which firmware is current?")
    m = await scrape(http, base)
    assert value(m, "vllm:prefix_cache_queries_total") > queries
    # the system prompt's full blocks ("system: ..." up to the question) are served from the cache
    assert value(m, "vllm:prefix_cache_hits_total") >= (len("system: " + SYSTEM) // BLOCK_CHARS) * BS
    (info,) = m["vllm:cache_config_info"]
    assert info.labels["block_size"] == "16" and info.labels["num_gpu_blocks"] == str(8192 // 16)
    assert info.labels["enable_prefix_caching"] == "True"


async def test_old_vllm_names_carry_the_same_prefix_cache_counters(engine, http):
    base = await engine(kv_name="old")
    await chat(http, base, "one")
    await chat(http, base, "two")
    m = await scrape(http, base)
    assert value(m, "vllm:gpu_prefix_cache_hits_total") > 0
    assert "vllm:prefix_cache_hits_total" not in m


async def test_sglang_reports_its_hit_rate_and_cached_tokens(engine, http):
    base = await engine(engine="sglang")
    await chat(http, base, "one")
    await chat(http, base, "two")
    m = await scrape(http, base)
    cached = value(m, "sglang:cached_tokens_total")
    assert cached >= (len("system: " + SYSTEM) // BLOCK_CHARS) * BS
    assert 0 < cached < value(m, "sglang:prompt_tokens_total")
    assert "sglang:cache_hit_rate" in m and "sglang:max_total_num_tokens" in m


async def test_the_admin_snapshot_shows_the_prefix_cache_and_can_reset_it(engine, http):
    base = await engine()
    await chat(http, base, "one")
    async with http.get(f"{base}/_emulator/state") as r:
        (core,) = (await r.json())["engines"]
    assert core["prefix_cache"]["cached_blocks"] >= 27 and core["prefix_cache"]["held_blocks"] == 0
    async with http.delete(f"{base}/_emulator/prefix_cache") as r:
        assert r.status == 200
        (core,) = (await r.json())["engines"]
    assert core["prefix_cache"]["cached_blocks"] == 0
    await chat(http, base, "two")
    m = await scrape(http, base)
    assert value(m, "vllm:prefix_cache_hits_total") == 0
