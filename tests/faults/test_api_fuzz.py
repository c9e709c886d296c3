"""Property-based fuzz of every HTTP route of the API, against `create_app` on a real Redis.

Every route of the Flask URL map gets requests with arbitrary JSON and bytes bodies, member strings of every odd
shape (IPv6, route domains, unicode, huge ports, empty, whitespace), odd query strings (`iterations`, `simple`)
and odd path segments; plus paths that match no route. For every response: no 5xx; every 4xx is JSON with a
`detail` that says what is wrong; a select answer is exactly `none`, `fallback` or one of the members offered.
The quick core runs 500 cases; the faults suite runs 10,000. Body size (413) and 10,000-member lists are tested
directly.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger
from werkzeug.routing import Rule

from llmsched.api.app import create_app
from llmsched.scorer.step import score_pool
from llmsched.shared.config_model import Config, FallbackConfig, ModeConfig, PoolConfig, SchedulerConfig
from llmsched.shared.members import Member
from llmsched.shared.publish import publish_config
from llmsched.shared.store import Store

from tests.faults.conftest import RecordFigure
from tests.faults.fuzz_cases import Case, Seeded, arbitrary_path_strategy, request_strategy
from tests.helpers import make_store

M = {"waiting_queue": 1.0, "cache_usage": 0.3, "running_req": 2.0}
SELECT = "/scheduler/select"


def seed_pools(store: Store, pools: dict[tuple[str, str], list[str]], fallback_pools: set[str]) -> None:
    """Publish every pool in one config (a publish forgets pools it does not list), then members, scrapes, scores."""
    configs = [
        PoolConfig(name=n, partition=p, engine_type="vllm", fallback=FallbackConfig(pool_fallback=n in fallback_pools))
        for n, p in pools
    ]
    publish_config(
        store,
        Config(pools=tuple(configs), modes=(ModeConfig(name="s1"),), scheduler=SchedulerConfig(stale_after=3600.0)),
        "fuzz",
    )
    now = time.time()
    for pool in configs:
        members = [
            Member(address=m.rpartition(":")[0], port=int(m.rpartition(":")[2]), name=m)
            for m in pools[(pool.name, pool.partition)]
        ]
        store.set_members(pool.key, {"fetched_at": now, "members": [m.to_dict() for m in members], "error": None})
        store.set_metrics(pool.key, {m.id: {"scraped_at": now, "status": "ok", "metrics": M} for m in members})
        score_pool(store, pool.key, now)


@pytest.fixture()
def fuzz_target(redis_url: str) -> Iterator[tuple[FlaskClient, Seeded, list]]:
    store = make_store(redis_url)
    pools = {
        ("p1", "Common"): ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"],
        ("v6", "TEST2"): ["2001:db8::1:8000", "2001:db8::2:8000", "10.0.0.1%2:8000"],
        ("fb", "Common"): ["10.0.1.1:8000"],
        ("名前", "Common"): ["10.0.2.1:8000"],
    }
    seed_pools(store, pools, fallback_pools={"fb"})
    app = create_app(store, rng=random.Random(5))
    # The data plane is answered in front of Flask (llmsched.api.select), so it is not in Flask's URL map.
    rules = [Rule(SELECT, methods=["POST"]), *app.url_map.iter_rules()]
    logger.disable("api")  # a debug line per decision would cost more than the decision itself
    try:
        yield app.test_client(), Seeded(pools), rules
    finally:
        logger.enable("api")


def check(client: FlaskClient, case: Case) -> int:
    """Send one case and assert the API's contract on the answer; returns the status."""
    kwargs = {"method": case.method}
    if case.body is not None:
        kwargs["data"] = case.body
    if case.content_type:
        kwargs["content_type"] = case.content_type
    resp = client.open(case.url, **kwargs)
    status = resp.status_code
    where = f"{case.method} {case.url[:200]} body={case.body[:200] if case.body else None!r}"
    assert status < 500, f"{status} for {where}: {resp.get_data()[:300]!r}"
    if 400 <= status < 500 and case.method != "HEAD":
        assert resp.mimetype == "application/json", f"{status} not JSON for {where}"
        detail = resp.get_json()["detail"]
        if isinstance(detail, list):  # 422: each problem says where (loc) and what (msg)
            assert detail and all(p.get("loc") and p.get("msg") for p in detail), detail
        else:
            assert isinstance(detail, str) and detail.strip(), f"empty detail for {where}"
    if case.path == SELECT and case.method == "POST" and status == 200:
        answer = resp.get_data(as_text=True)
        assert answer in {"none", "fallback", *(case.offered or ())}, f"answer {answer!r} for {where}"
        assert resp.mimetype == "text/plain"
    return status


def fuzz(client: FlaskClient, strategy: st.SearchStrategy[Case], examples: int) -> Counter[int]:
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def run(case: Case) -> None:
        statuses[check(client, case)] += 1

    run()
    return statuses


def run_fuzz(fuzz_target, record_figure: RecordFigure, total: int, label: str) -> None:
    client, seeded, rules = fuzz_target
    select_rules = [r for r in rules if r.rule == SELECT]
    plan = {
        "every route": (request_strategy(rules, seeded), total * 6 // 10),
        "select only": (request_strategy(select_rules, seeded).filter(lambda c: c.method == "POST"), total * 3 // 10),
        "paths matching no route": (arbitrary_path_strategy(), total // 10),
    }
    statuses: Counter[int] = Counter()
    for strategy, examples in plan.values():
        statuses += fuzz(client, strategy, examples)
    cases = sum(statuses.values())
    shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    record_figure(
        f"API fuzz ({label}), {len(rules)} routes",
        "no 5xx; 4xx JSON with `detail`; select answers none/fallback/an offered member",
        cases,
        "cases",
        figure=f"statuses {shown}",
    )
    assert cases >= total * 0.95, f"only {cases} distinct cases ran"
    assert all(s < 500 for s in statuses)


def test_fuzzed_requests_to_every_route_get_no_5xx_and_clear_4xx_quick(
    fuzz_target, record_figure: RecordFigure
) -> None:
    run_fuzz(fuzz_target, record_figure, 500, "quick core")


@pytest.mark.faults
def test_fuzzed_requests_to_every_route_get_no_5xx_and_clear_4xx_10000_cases(
    fuzz_target, record_figure: RecordFigure
) -> None:
    run_fuzz(fuzz_target, record_figure, 10_000, "faults suite")


def test_the_fuzz_covers_every_route_including_select_simulate_analyze_and_status(fuzz_target) -> None:
    _, _, rules = fuzz_target
    found = {r.rule for r in rules}
    assert {
        SELECT,
        "/pools/<pool_name>/<partition>/simulate",
        "/pools/<pool_name>/<partition>/analyze",
        "/pools/<pool_name>/<partition>/status",
        "/pools/status",
        "/health",
        "/livez",
    } <= found


def test_a_10000_member_list_is_answered_and_10001_members_is_a_422_naming_the_list(
    fuzz_target, record_figure: RecordFigure
) -> None:
    client, _, _ = fuzz_target
    offered = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:9000" for i in range(9_999)] + ["10.0.0.2:8000"]
    ok = client.post(SELECT, json={"pool_name": "p1", "partition": "Common", "members": offered})
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "10.0.0.2:8000"
    too_many = client.post(SELECT, json={"pool_name": "p1", "partition": "Common", "members": offered + ["x:1"]})
    assert too_many.status_code == 422
    (problem,) = too_many.get_json()["detail"]
    assert problem["loc"] == ["body", "members"] and "10000" in problem["msg"].replace(",", "")
    record_figure(
        "huge member list", "10,000 members answered; 10,001 -> 422 naming `members`", len(offered), "members"
    )


@pytest.mark.parametrize("path", [SELECT, "/pools/p1/Common/simulate", "/pools/p1/Common/analyze"])
def test_a_body_over_1_mib_is_a_413_with_a_json_detail(fuzz_target, path: str) -> None:
    client, _, _ = fuzz_target
    body = json.dumps(
        {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"], "pad": "x" * (1 << 20)}
    ).encode()
    resp = client.post(path, data=body, content_type="application/json")
    assert resp.status_code == 413
    assert resp.mimetype == "application/json" and resp.get_json()["detail"]


def test_iterations_are_capped_on_simulate_and_analyze_with_a_400_saying_the_limit(fuzz_target) -> None:
    client, _, _ = fuzz_target
    body = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"]}
    for path in ("/pools/p1/Common/simulate", "/pools/p1/Common/analyze"):
        resp = client.post(f"{path}?iterations=100001", json=body)
        assert resp.status_code == 400 and "100000" in resp.get_json()["detail"].replace(",", "")
        assert client.post(f"{path}?iterations=100000", json=body).status_code == 200
