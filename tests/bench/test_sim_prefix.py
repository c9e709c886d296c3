"""Prefixes in the simulator: prompt content ids, the engines' prefix caches, the shared index, scenarios, runs."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest
import yaml

from llmsched.bench.sim import runner, scenario
from llmsched.bench.sim.engine import Engine, Request
from llmsched.bench.sim.prefixes import FP_MAX, FP_TOKENS, Conversation, PrefixIndex, Turn, chain_ids, fingerprints

from tests.bench.test_sim_engine import PROFILE as ENGINE_PROFILE
from tests.bench.test_sim_engine import Listener

PROFILE = replace(ENGINE_PROFILE, kv_tokens=4_000)


def run_alone(engine: Engine, req: Request, start: float) -> float:
    """Submit one request at `start` and step until the engine idles; the time it idles."""
    engine.submit(req, start)
    now = start
    while (step := engine.start_step(now)) is not None:
        now += step
        engine.end_step(now)
    return now


def request(rid: int, group: int, group_tokens: int, own: int, output: int = 4) -> Request:
    conv = Conversation(group, group_tokens, 1000 + 10 * rid, (Turn(own, output, 0.0),))
    segments = conv.segments(0)
    req = Request(rid, sum(n for _, n in segments), output, 0.0)
    req.blocks = chain_ids(segments, 16)
    return req


# --- content ids -----------------------------------------------------------------------------------------------
def test_prompts_sharing_a_prefix_share_exactly_its_full_blocks() -> None:
    a = chain_ids(((1, 100), (50, 40)), 16)
    b = chain_ids(((1, 100), (60, 40)), 16)
    other = chain_ids(((2, 100), (70, 40)), 16)
    assert a[:6] == b[:6]  # 100 tokens: 6 full blocks of the prefix
    assert a[6] != b[6]  # the block that straddles into the own part differs
    assert not set(a) & set(other)


def test_fingerprints_cover_fp_tokens_each_and_stop_at_the_cap() -> None:
    assert len(fingerprints(((1, FP_TOKENS * 3 + 5),))) == 3
    assert len(fingerprints(((1, FP_TOKENS * (FP_MAX + 10)),))) == FP_MAX
    assert fingerprints(((1, FP_TOKENS - 1),)) == ()


def test_a_session_turn_repeats_the_previous_prompt_and_its_answer() -> None:
    conv = Conversation(0, 300, 5000, (Turn(100, 50, 0.0), Turn(80, 60, 3.0), Turn(90, 10, 2.0)))
    first, second = chain_ids(conv.segments(0), 16), chain_ids(conv.segments(1), 16)
    assert second[: len(first)] == first
    assert sum(n for _, n in conv.segments(1)) == 300 + 100 + 50 + 80


# --- engine prefix cache ---------------------------------------------------------------------------------------
def test_a_cached_prefix_skips_its_prefill_on_that_engine_only() -> None:
    listener = Listener()
    e1, e2 = Engine(0, "a", PROFILE, listener), Engine(1, "b", PROFILE, listener)
    run_alone(e1, request(1, 0, 1000, 50), 0.0)
    hit, miss = request(2, 0, 1000, 60), request(3, 0, 1000, 60)
    t_hit = run_alone(e1, hit, 10.0) - 10.0
    t_miss = run_alone(e2, miss, 10.0) - 10.0
    assert hit.cached == 1000 // 16 * 16 and miss.cached == 0
    assert hit.first_token - 10.0 < (miss.first_token - 10.0) / 2
    assert t_hit < t_miss


def test_the_last_prompt_token_is_always_computed() -> None:
    listener = Listener()
    engine = Engine(0, "a", PROFILE, listener)
    run_alone(engine, request(1, 0, 320, 0 + 1), 0.0)
    same = request(2, 0, 320, 1)  # 321 tokens, 20 full blocks all cached
    same.blocks = chain_ids(((1, 320),), 16)
    same.prompt = 320
    run_alone(engine, same, 5.0)
    assert same.cached == 19 * 16  # 320 tokens: the 20th block holds the last token, recomputed


def test_sequences_sharing_a_prefix_hold_its_kv_once() -> None:
    listener = Listener()
    engine = Engine(0, "a", PROFILE, listener)
    first, second = request(1, 0, 800, 40, output=50), request(2, 0, 800, 40, output=50)
    engine.submit(first, 0.0)
    now = 0.0
    for _ in range(3):  # first completes its prefill and decodes
        now += engine.start_step(now) or 0.0
        engine.end_step(now)
    engine.submit(second, now)
    now += engine.start_step(now) or 0.0
    engine.end_step(now)
    alone = first.prompt + second.prompt
    assert engine.kv_used < alone - 700  # the 50 shared blocks (800 tokens) count once


def test_freed_blocks_stay_cached_within_the_free_kv_and_the_oldest_prompt_is_evicted_first() -> None:
    listener = Listener()
    engine = Engine(0, "a", PROFILE, listener)
    now = 0.0
    for g in range(6):  # 6 x ~1000 tokens through a 4000-token cache
        now = run_alone(engine, request(g + 1, g, 992, 8), now + 1.0)
        assert len(engine.free_cached) * 16 <= PROFILE.kv_tokens - engine.kv_used
    assert engine.cached_blocks(request(10, 5, 992, 8).blocks or ()) == 62  # the last prefix is cached
    assert engine.cached_blocks(request(11, 0, 992, 8).blocks or ()) == 0  # the first was evicted


def test_a_failed_engine_comes_back_with_an_empty_cache() -> None:
    listener = Listener()
    engine = Engine(0, "a", PROFILE, listener)
    run_alone(engine, request(1, 0, 992, 8), 0.0)
    engine.fail(5.0)
    engine.recover()
    assert engine.cached_blocks(request(2, 0, 992, 8).blocks or ()) == 0


# --- the shared index ------------------------------------------------------------------------------------------
def test_the_index_sees_a_record_only_after_the_write_lands() -> None:
    index = PrefixIndex(["a", "b"], [100, 100], delay=0.001)
    index.record(10.0, "a", (1, 2, 3))
    assert index.matched(10.0, (1, 2, 3)) == {}
    assert index.matched(10.002, (1, 2, 9)) == {"a": 2}


def test_the_index_is_bounded_per_member_and_keeps_leading_fingerprints_longest() -> None:
    index = PrefixIndex(["a"], [4], delay=0.0)
    index.record(0.0, "a", (1, 2, 3))
    index.record(1.0, "a", (7, 8, 9))
    assert index.matched(2.0, (7, 8, 9)) == {"a": 3}
    assert len(index.entries["a"]) == 4
    assert index.matched(2.0, (1,)) == {"a": 1}  # the first fingerprint of the older prompt outlived its tail
    assert index.matched(2.0, (1, 2)) == {"a": 1}


def test_index_entries_expire() -> None:
    index = PrefixIndex(["a"], [10], delay=0.0, ttl=60.0)
    index.record(0.0, "a", (1, 2))
    assert index.matched(59.0, (1, 2)) == {"a": 2}
    assert index.matched(61.0, (1, 2)) == {}


# --- scenarios and runs ----------------------------------------------------------------------------------------
TINY = textwrap.dedent("""
    duration: 60
    warmup: 10
    engines:
      - {name: e1, profile: a100-llama3-8b, params: {kv_tokens: 100000}}
      - {name: e2, profile: a100-llama3-8b, params: {kv_tokens: 100000}}
      - {name: e3, profile: a100-llama3-8b, params: {kv_tokens: 100000}}
    workload:
      prompt: {median: 300, sigma: 0.3}
      prefixes: {groups: 60, tokens: {median: 4000, sigma: 0.2}, popularity: zipf, zipf_s: 1.1}
    arrivals: {process: poisson, load: 1.5}
    pipeline: {scrape_interval: 2}
""")


def tiny(**workload: object) -> scenario.Scenario:
    raw = yaml.safe_load(TINY)
    raw["workload"].update(workload)
    raw["workload"] = {k: v for k, v in raw["workload"].items() if v is not None}
    return scenario.parse(raw, "tiny.yaml")


def test_the_issue_keys_parse() -> None:
    sc = tiny(sessions={"turns": {"mean": 4}, "think_time": {"mean": 8}})
    wl = sc.workload
    assert wl.prefixes is not None and wl.sessions is not None
    assert (wl.prefixes.groups, wl.prefixes.median, wl.prefixes.popularity, wl.prefixes.zipf_s) == (
        60,
        4000,
        "zipf",
        1.1,
    )
    assert (wl.sessions.turns_mean, wl.sessions.think_mean) == (4, 8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prefixes": {"groups": 3, "tokens": {"median": 10}, "popularity": "pareto"}}, "popularity"),
        ({"prefixes": {"groups": 3, "tokens": {"median": 10}, "zipf_s": 1.2}}, "zipf_s"),
        ({"prefixes": {"groups": 3, "tokens": {"median": 10}, "size": 4}}, "workload.prefixes.size"),
        ({"prefixes": {"tokens": {"median": 10}}}, "workload.prefixes.groups"),
        ({"sessions": {"turns": {"mean": 0.5}}}, "workload.sessions.turns"),
    ],
)
def test_bad_prefix_or_session_keys_are_rejected_naming_the_key(change: dict, message: str) -> None:
    with pytest.raises(scenario.ScenarioError, match=message):
        tiny(**change)


def test_sessions_need_open_loop_arrivals() -> None:
    raw = yaml.safe_load(TINY)
    raw["workload"]["sessions"] = {"turns": {"mean": 3}}
    raw["arrivals"] = {"process": "closed", "concurrency": 4}
    with pytest.raises(scenario.ScenarioError, match="sessions"):
        scenario.parse(raw, "x.yaml")


def test_a_scenario_without_prefixes_runs_the_default_exactly_as_today() -> None:
    sc = tiny(prefixes=None)
    prepared = runner.prepare(sc, 2)
    hinted, plain = runner.run(prepared, "default").to_json(), runner.run(prepared, "default_no_prefix").to_json()
    hinted.pop("policy"), plain.pop("policy")
    assert hinted == plain
    assert hinted["cache_hit_rate"] == 0.0 and hinted["prefix_share"] == 0.0


def test_with_shared_prefixes_the_default_sticks_and_hits_the_cache() -> None:
    prepared = runner.prepare(tiny(), 1)
    default, plain = runner.run(prepared, "default"), runner.run(prepared, "default_no_prefix")
    assert default.prefix_share > 0.5
    assert default.cache_hit_rate > plain.cache_hit_rate + 0.1
    row = default.to_json()
    assert {"ttft_p90", "cache_hit_rate"} <= set(row) and row["ttft_p90"] <= row["ttft_p99"]


def test_session_turns_follow_their_answers_with_the_whole_conversation() -> None:
    sc = tiny(sessions={"turns": {"mean": 4}, "think_time": {"mean": 2}})
    prepared = runner.prepare(sc, 1)
    sim = runner.Simulation(prepared, "least_conn")
    sim.run()
    later = [r for r in sim.main if r.turn > 0]
    assert len(later) > len(prepared.requests)  # ~3 later turns per session
    by_conv: dict[int, list[Request]] = {}
    for r in sim.main:
        by_conv.setdefault(id(r.conv), []).append(r)
    for turns in by_conv.values():
        for prev, nxt in zip(turns, turns[1:]):
            assert nxt.arrival >= (prev.finished or 0.0)
            assert nxt.prompt == prev.prompt + prev.output + nxt.conv.turns[nxt.turn].own  # type: ignore[attr-defined]


def test_the_oracle_counts_each_engines_cache() -> None:
    prepared = runner.prepare(tiny(), 1)
    oracle, random_ = runner.run(prepared, "oracle"), runner.run(prepared, "random")
    assert oracle.cache_hit_rate > random_.cache_hit_rate


def test_when_room_runs_short_a_freed_prompt_loses_its_tail_before_its_start() -> None:
    listener = Listener()
    engine = Engine(0, "a", PROFILE, listener)
    first = request(1, 0, 992, 8)
    run_alone(engine, first, 0.0)
    big = request(2, 1, 3488, 8, output=20)  # leaves room for ~30 of first's 63 cached blocks
    engine.submit(big, 1.0)
    now = 1.0
    while big.first_token is None:
        now += engine.start_step(now) or 0.0
        engine.end_step(now)
    kept = engine.cached_blocks(first.blocks or ())
    assert 0 < kept < 63


def test_the_threshold_sweep_runs_each_pair_beside_the_references_and_restores_the_constants(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmsched.bench.sim import prefix_sweep
    from llmsched.shared.routing import prefix

    path = tmp_path / "tiny.yaml"  # type: ignore[operator]
    raw = yaml.safe_load(TINY)
    raw["duration"], raw["warmup"] = 30, 5
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(prefix_sweep, "THRESHOLDS", (1.0, 0.0))
    monkeypatch.setattr(prefix_sweep, "NEARS", (0.5,))
    before = prefix.THRESHOLD, prefix.NEAR
    results = prefix_sweep.measure([str(path)], [1])
    rows = results[str(path)]
    assert list(rows) == [*prefix_sweep.REFERENCES, prefix_sweep.label(1.0, 0.5), prefix_sweep.label(0.0, 0.5)]
    # threshold 0 never sticks: a holder gets no preference (every request with a held prefix is overflow, to the
    # least loaded member), so fewer prompt tokens come from the cache than with threshold 1
    assert rows[prefix_sweep.label(0.0, 0.5)][2] < rows[prefix_sweep.label(1.0, 0.5)][2]
    assert rows[prefix_sweep.label(1.0, 0.5)][2] > rows["default_no_prefix"][2]
    assert (prefix.THRESHOLD, prefix.NEAR) == before
    assert "| default threshold 1 near 0.5 |" in prefix_sweep.markdown(results, [1])
