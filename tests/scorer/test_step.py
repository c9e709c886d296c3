import pytest

from llmsched.scorer import compute_scores
from llmsched.scorer.step import build_snapshot, score_pool

from tests.helpers import make_store

NOW = 1_000_000.0
CONFIG = {
    "name": "p",
    "partition": "Common",
    "engine_type": "vllm",
    "stale_after": 10.0,
    "mode": "s1",
    "weights": {"w_a": 0.5, "w_b": 0.5},
}


def members(*ids: str) -> dict:
    out = []
    for mid in ids:
        address, _, port = mid.rpartition(":")
        out.append({"address": address, "port": int(port), "status": "enabled", "ratio": 1})
    return {"fetched_at": NOW, "members": out}


def scrape(w: float, c: float, r: float, age: float = 1.0, status: str = "ok") -> dict:
    return {
        "scraped_at": NOW - age,
        "status": status,
        "metrics": {"waiting_queue": w, "cache_usage": c, "running_req": r},
    }


def test_snapshot_scores_members_with_fresh_metrics_exactly_as_the_mode_does():
    metrics = {"10.0.0.1:80": scrape(1, 0.2, 3), "10.0.0.2:80": scrape(5, 0.6, 9)}
    snap = build_snapshot(CONFIG, members("10.0.0.1:80", "10.0.0.2:80"), metrics, NOW)
    expected = compute_scores("s1", [m["metrics"] for m in metrics.values()], CONFIG["weights"])
    assert [m["score"] for m in snap["members"]] == expected
    assert snap["computed_at"] == NOW and snap["mode"] == "s1"


def test_member_never_scraped_failed_or_stale_gets_no_score_and_is_left_out_of_normalisation():
    metrics = {
        "10.0.0.1:80": scrape(1, 0.2, 3),
        "10.0.0.2:80": scrape(9, 0.9, 9, status="error"),
        "10.0.0.3:80": scrape(0, 0.1, 1, age=11.0),
    }
    snap = build_snapshot(CONFIG, members("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"), metrics, NOW)
    scores = [m["score"] for m in snap["members"]]
    # alone among usable members, 10.0.0.1 scores as a single member: 0.5*(1-0) + 0.5*(1-0.2)
    assert scores == [pytest.approx(0.9), None, None, None]
    assert [m["scrape_status"] for m in snap["members"]] == ["ok", "error", "ok", "never"]


def test_no_mode_configured_scores_nobody():
    snap = build_snapshot({**CONFIG, "mode": None}, members("10.0.0.1:80"), {"10.0.0.1:80": scrape(1, 0.2, 3)}, NOW)
    assert snap["members"][0]["score"] is None


def test_members_keep_bigip_order_and_route_domain_identity():
    snap = build_snapshot(CONFIG, members("10.0.0.2%3:80", "10.0.0.1:80"), {}, NOW)
    assert [m["id"] for m in snap["members"]] == ["10.0.0.2%3:80", "10.0.0.1:80"]


def test_score_pool_reads_redis_and_writes_the_snapshot(redis_url):
    store = make_store(redis_url)
    store.publish_pools({"p:Common": CONFIG}, "v", "", "test")
    store.set_members("p:Common", members("10.0.0.1:80"))
    store.set_metrics("p:Common", {"10.0.0.1:80": scrape(0, 0.5, 1)})
    snap = score_pool(store, "p:Common", NOW)
    assert store.scores("p:Common") == snap
    assert snap["members"][0]["score"] == pytest.approx(0.75)


def test_score_pool_of_an_unconfigured_pool_writes_nothing(redis_url):
    store = make_store(redis_url)
    assert score_pool(store, "nope:Common", NOW) is None
    assert store.scores("nope:Common") is None


def test_snapshot_carries_each_members_slack_for_herd_control():
    metrics = {"10.0.0.1:80": scrape(0, 0.3, 30), "10.0.0.2:80": scrape(5, 0.95, 40, status="error")}
    snap = build_snapshot(CONFIG, members("10.0.0.1:80", "10.0.0.2:80"), metrics, NOW)
    # capacity = 30 x 0.9 / 0.3 = 90 requests below the KV knee; slack = 90 - 30 running - 0 waiting
    assert snap["members"][0]["slack"] == pytest.approx(60.0)
    assert snap["members"][1]["slack"] is None


def test_bigip_ratio_reaches_the_mode_as_a_capacity_hint():
    config = {**CONFIG, "mode": "saturation", "weights": {}}
    doc = members("10.0.0.1:80", "10.0.0.2:80")
    doc["members"][1]["ratio"] = 4
    idle = {"10.0.0.1:80": scrape(0, 0.0, 0), "10.0.0.2:80": scrape(0, 0.0, 0)}
    first, second = (m["score"] for m in build_snapshot(config, doc, idle, NOW)["members"])
    assert second > first


def test_the_kv_size_a_scrape_reports_sizes_an_idle_member_from_its_busy_peers():
    # the busy member holds 0.5 x 32,000 / 20 = 800 tokens a request; the idle one reports 64,000 tokens of KV
    # (vLLM's num_gpu_blocks x block_size, the scrape document's prefix_cache): 64,000 x 0.9 / 800 = 72 fit
    config = {**CONFIG, "mode": "saturation", "weights": {}}
    busy, idle = scrape(0, 0.5, 20), scrape(0, 0.0, 0)
    busy["prefix_cache"] = {"capacity_tokens": 32_000.0, "block_size": 16}
    idle["prefix_cache"] = {"capacity_tokens": 64_000.0, "block_size": 16}
    doc = members("10.0.0.1:80", "10.0.0.2:80")
    snap = build_snapshot(config, doc, {"10.0.0.1:80": busy, "10.0.0.2:80": idle}, NOW)
    assert snap["members"][1]["slack"] == pytest.approx(72.0)
    assert snap["members"][0]["slack"] == pytest.approx(20 * 0.9 / 0.5 - 20)
    assert snap["members"][1]["score"] == 1.0


def test_the_original_modes_score_the_same_whatever_kv_size_the_scrape_reports():
    plain = {"10.0.0.1:80": scrape(1, 0.5, 20), "10.0.0.2:80": scrape(0, 0.1, 3)}
    sized = {k: {**v, "prefix_cache": {"capacity_tokens": 32_000.0}} for k, v in plain.items()}
    doc = members("10.0.0.1:80", "10.0.0.2:80")
    for mode in ("s1", "s2_enhanced"):
        config = {**CONFIG, "mode": mode}
        got = [m["score"] for m in build_snapshot(config, doc, sized, NOW)["members"]]
        assert got == [m["score"] for m in build_snapshot(config, doc, plain, NOW)["members"]]
