"""The engine emulator over real HTTP: every /metrics flavour parses, load moves the metrics, speed matters."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


async def scrape(http: aiohttp.ClientSession, base: str, **kw: object) -> dict[str, list]:
    """name -> samples, parsed by prometheus_client (so the exposition must be valid)."""
    async with http.get(f"{base}/metrics", **kw) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items()))


async def complete(http: aiohttp.ClientSession, base: str, **body: object) -> dict:
    async with http.post(f"{base}/v1/completions", json={"model": MODEL, "prompt": "x" * 40, **body}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


@pytest.mark.parametrize(
    "kv_name, present, absent",
    [
        (
            "old",
            {
                "vllm:gpu_cache_usage_perc",
                "vllm:gpu_prefix_cache_queries_total",
                "vllm:time_per_output_token_seconds_bucket",
            },
            {"vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total"},
        ),
        ("both", {"vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"}, set()),
        (
            "new",
            {"vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total", "vllm:inter_token_latency_seconds_bucket"},
            {"vllm:gpu_cache_usage_perc"},
        ),
    ],
)
async def test_vllm_flavours_parse(engine, http, kv_name, present, absent):
    base = await engine(kv_name=kv_name)
    await complete(http, base)
    m = await scrape(http, base)
    assert present <= set(m) and not absent & set(m)
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting"):
        assert [s.labels for s in m[name]] == [{"engine": "0", "model_name": MODEL}]
    assert {
        "vllm:prompt_tokens_total",
        "vllm:prompt_tokens_created",
        "vllm:time_to_first_token_seconds_count",
        "vllm:time_to_first_token_seconds_created",
        "vllm:cache_config_info",
    } <= set(m)
    les = [s.labels["le"] for s in m["vllm:time_to_first_token_seconds_bucket"]]
    assert les[0] == "0.001" and les[-2] == "2560.0" and les[-1] == "+Inf" and len(les) == 23
    assert value(m, "vllm:request_success_total", finished_reason="length") == 1
    assert value(m, "vllm:generation_tokens_total") == 16
    if kv_name == "both":  # same value under both names
        assert m["vllm:gpu_cache_usage_perc"][0].value == m["vllm:kv_cache_usage_perc"][0].value


async def test_vllm_dp2_and_multiprocess(engine, http):
    base = await engine(dp=2, multiprocess=True)
    m = await scrape(http, base)
    assert [s.labels["engine"] for s in m["vllm:kv_cache_usage_perc"]] == ["0", "1"]
    assert not any(name.endswith("_created") for name in m)
    async with http.get(f"{base}/metrics") as r:
        body = [ln for ln in (await r.text()).splitlines() if ln.startswith("vllm:e2e_request_latency_seconds")]
    assert body[0].startswith("vllm:e2e_request_latency_seconds_sum")  # multiprocess ordering


@pytest.mark.parametrize("prefix, sep", [("colon", ":"), ("underscore", "_")])
async def test_sglang_flavours_parse(engine, http, prefix, sep):
    base = await engine(engine="sglang", sglang_prefix=prefix, tp=2, all_schedulers=True, dp=2)
    await complete(http, base)
    m = await scrape(http, base)
    running = m[f"sglang{sep}num_running_reqs"]
    assert {(s.labels["dp_rank"], s.labels["tp_rank"]) for s in running} == {
        ("0", "0"),
        ("0", "1"),
        ("1", "0"),
        ("1", "1"),
    }  # per-TP duplicates, per DP rank
    assert set(running[0].labels) == {"dp_rank", "engine_type", "model_name", "moe_ep_rank", "pp_rank", "tp_rank"}
    assert "pid" in m[f"sglang{sep}num_retracted_reqs"][0].labels
    assert m[f"sglang{sep}prompt_tokens_total"][0].labels == {"engine_type": "unified", "model_name": MODEL}
    assert not any(name.endswith("_created") for name in m)
    assert value(m, f"sglang{sep}generation_tokens_total") == 16
    assert value(m, f"sglang{sep}max_total_num_tokens", tp_rank="0", dp_rank="0") == 8192


async def test_sglang_default_single_series_and_sum_first(engine, http):
    base = await engine(engine="sglang", tp=4)  # without all_schedulers only TP rank 0 reports
    m = await scrape(http, base)
    assert [s.labels["tp_rank"] for s in m["sglang:token_usage"]] == ["0"]
    assert "dp_rank" not in m["sglang:token_usage"][0].labels
    async with http.get(f"{base}/metrics") as r:
        lines = [ln for ln in (await r.text()).splitlines() if ln.startswith("sglang:time_to_first_token")]
    assert lines[0].startswith("sglang:time_to_first_token_seconds_sum")
    assert lines[-1].startswith("sglang:time_to_first_token_seconds_count")


async def test_metrics_follow_load(engine, http):
    base = await engine(max_running=2, speed=0.5, kv_capacity=1000)
    tasks = [asyncio.create_task(complete(http, base, max_tokens=20)) for _ in range(6)]
    for _ in range(50):  # until all six have arrived (the first batch needs ~0.25 s to finish)
        m = await scrape(http, base)
        if value(m, "vllm:num_requests_waiting") == 4:
            break
        await asyncio.sleep(0.01)
    assert value(m, "vllm:num_requests_running") == 2
    assert value(m, "vllm:num_requests_waiting") == 4
    kv = value(m, "vllm:kv_cache_usage_perc")
    assert 0.02 <= kv < 0.1  # 2 x (10 prompt + some generated) / 1000
    results = await asyncio.gather(*tasks)
    assert all(r["usage"]["completion_tokens"] == 20 for r in results)
    m = await scrape(http, base)
    assert value(m, "vllm:num_requests_running") == value(m, "vllm:num_requests_waiting") == 0
    assert value(m, "vllm:kv_cache_usage_perc") == 0
    assert value(m, "vllm:generation_tokens_total") == 120
    assert value(m, "vllm:request_success_total", finished_reason="length") == 6
    assert value(m, "vllm:request_queue_time_seconds_count") == 6


async def test_kv_pressure_preempts(engine, http):
    base = await engine(max_running=4, kv_capacity=100)
    await asyncio.gather(*(complete(http, base, max_tokens=20) for _ in range(4)))
    m = await scrape(http, base)
    assert value(m, "vllm:num_preemptions_total") > 0  # 4 x (10 + 20) tokens cannot fit in 100
    assert value(m, "vllm:generation_tokens_total") == 80


async def test_slow_engine_is_slower(engine, http):
    fast, slow = await engine(speed="fast"), await engine(speed="slow")
    durations = []
    for base in (fast, slow):
        t0 = time.monotonic()
        await complete(http, base, max_tokens=8)
        durations.append(time.monotonic() - t0)
    assert durations[1] > 3 * durations[0]


async def test_dp_router_spreads_requests(engine, http):
    base = await engine(dp=2, speed=0.5)
    await asyncio.gather(*(complete(http, base, max_tokens=4) for _ in range(4)))
    m = await scrape(http, base)
    assert value(m, "vllm:request_success_total", engine="0") == 2
    assert value(m, "vllm:request_success_total", engine="1") == 2


async def test_openai_shapes_and_streaming(engine, http):
    base = await engine()
    async with http.get(f"{base}/v1/models") as r:
        assert (await r.json())["data"][0]["id"] == MODEL
    body = await complete(http, base, max_tokens=5)
    assert body["object"] == "text_completion" and body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": None,
    }
    async with http.post(
        f"{base}/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        frames = [ln[len("data: ") :] for ln in (await r.text()).split("\n\n") if ln.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == 3 and content[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    async with http.post(f"{base}/v1/completions", json={"model": "other", "prompt": "x"}) as r:
        assert r.status == 404
    async with http.post(f"{base}/v1/completions", json={"prompt": "x", "max_tokens": 10**6}) as r:
        assert r.status == 400 and "maximum context length" in (await r.json())["message"]


async def test_admin_overrides_and_failure_modes(engine, http):
    base = await engine(dp=2)
    async with http.post(f"{base}/_emulator/metrics", json={"engine": 1, "waiting": 7, "running": 3, "kv": 0.87}):
        pass
    m = await scrape(http, base)
    assert value(m, "vllm:num_requests_waiting", engine="1") == 7
    assert value(m, "vllm:kv_cache_usage_perc", engine="1") == 0.87
    assert value(m, "vllm:num_requests_waiting", engine="0") == 0

    async def mode(name: str) -> None:
        async with http.post(f"{base}/_emulator/mode", json={"mode": name}) as r:
            assert r.status == 200

    await mode("error")
    async with http.get(f"{base}/metrics") as r:
        assert r.status == 500
    await mode("garbage")
    async with http.get(f"{base}/metrics") as r:
        with pytest.raises(ValueError):
            list(text_string_to_metric_families(await r.text()))
    await mode("partial")
    m = await scrape(http, base)
    assert "vllm:num_requests_running" in m and "vllm:num_requests_waiting" not in m
    assert "vllm:kv_cache_usage_perc" not in m
    await mode("truncated")
    async with http.get(f"{base}/metrics") as r:
        assert not (await r.text()).endswith("\n")
    await mode("quirky")
    async with http.get(f"{base}/metrics") as r:
        text = await r.text()
    assert "\n\n" in text and "NaN" in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["vllm:num_requests_waiting"].samples[1].value == 7
    await mode("hang")
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(f"{base}/metrics", timeout=aiohttp.ClientTimeout(total=0.3)):
            pass
    await mode("ok")
    async with http.delete(f"{base}/_emulator/metrics"):
        pass
    m = await scrape(http, base)
    assert value(m, "vllm:num_requests_waiting") == 0


async def test_stream_disconnect_frees_kv(engine, http):
    base = await engine(speed=0.2)
    resp = await http.post(f"{base}/v1/completions", json={"prompt": "y" * 400, "max_tokens": 200, "stream": True})
    await resp.content.readline()  # the first token is out
    resp.close()  # client goes away mid-stream
    for _ in range(100):
        m = await scrape(http, base)
        if value(m, "vllm:request_success_total", finished_reason="abort") == 1:
            break
        await asyncio.sleep(0.01)
    assert value(m, "vllm:kv_cache_usage_perc") == 0 and value(m, "vllm:num_requests_running") == 0


async def test_metrics_auth(engine, http):
    base = await engine(api_key="k3y", basic_auth=("scrape", "pw"))
    async with http.get(f"{base}/metrics") as r:
        assert r.status == 401
    async with http.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    await scrape(http, base, headers={"Authorization": "Bearer k3y"})
    await scrape(http, base, headers={"Authorization": aiohttp.encode_basic_auth("scrape", "pw")})
    async with http.get(f"{base}/_emulator/state") as r:  # the admin API stays open
        assert r.status == 200
