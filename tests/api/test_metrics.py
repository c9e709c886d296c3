"""GET /metrics of the API: decisions counted across gunicorn workers (multiprocess mode), the decision histograms,
bounded labels, and the member gauges computed from Redis at scrape time."""

from __future__ import annotations

import http.client
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from llmsched.api.app import create_app
from llmsched.api.metrics import TALLY
from llmsched.shared import telemetry
from llmsched.shared.store import Store, connect

from tests.api.live_api import live_api
from tests.conftest import free_port
from tests.helpers import make_store, seed

MEMBERS = {
    "10.0.0.1:8000": {"waiting_queue": 1.0, "cache_usage": 0.2, "running_req": 4.0},
    "10.0.0.2:8000": {"waiting_queue": 5.0, "cache_usage": 0.5, "running_req": 9.0},
    "10.0.0.3:8000": {"waiting_queue": 9.0, "cache_usage": 0.9, "running_req": 30.0},
}
BODY = orjson.dumps({"pool_name": "p1", "partition": "Common", "members": list(MEMBERS)})


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict, name: str, sample: str | None = None, **labels: str) -> float:
    """Sum of the samples called `sample` (default: the family's name + suffix) whose labels include `labels`."""
    family = fams[name]
    wanted = sample or name
    return sum(
        s.value for s in family.samples if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items())
    )


def http_call(base: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a new connection, as BIG-IP's sideband call makes it."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def decisions_in(directory: Path) -> float:
    """Decisions recorded in one set of multiprocess files (read with prometheus_client's own merger)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return sum(s.value for m in registry.collect() if m.name == "llmsched_decisions" for s in m.samples)


def worker_decisions(prom: Path, scratch: Path) -> list[float]:
    """Decisions in each worker's counter file read alone."""
    counts = []
    for path in sorted(prom.glob("counter_*.db")):
        alone = scratch / path.stem
        alone.mkdir(parents=True)
        shutil.copy(path, alone)
        counts.append(decisions_in(alone))
    return counts


def test_decisions_are_counted_across_gunicorn_workers_and_every_worker_reports_the_totals(redis_url, tmp_path):
    seed(make_store(redis_url), MEMBERS)
    prom = tmp_path / "prom"
    prom.mkdir()
    # Sync workers: each takes one connection at a time, so both answer some decisions (a gevent worker can take
    # them all); the metrics files and their merge are the same whatever the worker class. Which worker accepts a
    # connection is the kernel's choice (on a busy machine one can take a whole batch): batches go on until both
    # have answered some.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom), "LLMSCHED_API_WORKER_CLASS": "sync"}
    with live_api(redis_url, workers=2, env=env) as (base, _proc):
        n, picked, per_worker = 0, 0, []
        with ThreadPoolExecutor(8) as pool:
            while n < 2000 and len([d for d in per_worker if d > 0]) < 2:
                answers = list(pool.map(lambda _: http_call(base, "POST", "/scheduler/select", BODY), range(40)))
                assert all(status == 200 for status, _ in answers)
                n += len(answers)
                picked += sum(answer.decode() in MEMBERS for _, answer in answers)
                time.sleep(0.2)  # the last decisions are counted after their answers were sent
                per_worker = worker_decisions(prom, tmp_path / f"batch-{n}")
        # Both workers answered some: each one's files alone hold part of the decisions.
        assert len([d for d in per_worker if d > 0]) == 2 and sum(per_worker) == n, per_worker
        # Whichever worker answers the scrape, it reports the replica's totals.
        for _ in range(6):
            status, text = http_call(base, "GET", "/metrics")
            assert status == 200
            fams = families(text.decode())
            assert value(fams, "llmsched_decisions", "llmsched_decisions_total") == n
            assert (
                value(
                    fams,
                    "llmsched_decisions",
                    "llmsched_decisions_total",
                    pool="p1:Common",
                    result="member",
                    reason="picked",
                )
                == picked
            )
            assert (
                sum(value(fams, "llmsched_selections", "llmsched_selections_total", member=m) for m in MEMBERS)
                == picked
            )
            assert value(fams, "llmsched_decision_duration_seconds", "llmsched_decision_duration_seconds_count") == n
            buckets = [s for s in fams["llmsched_decision_duration_seconds"].samples if s.name.endswith("_bucket")]
            assert [s.labels["le"] for s in buckets][:2] == ["0.00025", "0.0005"] and buckets[-1].value == n
            assert value(fams, "llmsched_decision_candidates", "llmsched_decision_candidates_sum") == n * len(MEMBERS)


def test_llmsched_api_makes_its_own_metrics_dir_and_removes_it_at_exit(redis_url):
    seed(make_store(redis_url), MEMBERS)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with live_api(redis_url, workers=2, env=env) as (base, proc):
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        directory = Path(
            next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")).split(b"=", 1)[1].decode()
        )
        assert http_call(base, "POST", "/scheduler/select", BODY)[0] == 200
        deadline = time.monotonic() + 5  # counted after the answer was sent
        while not list(directory.glob("counter_*.db")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert directory.is_dir() and list(directory.glob("counter_*.db"))
    assert not directory.exists()


def test_files_of_an_earlier_run_in_a_reused_metrics_dir_are_removed_at_start(redis_url, tmp_path):
    stale = tmp_path / "counter_1.db"
    stale.write_bytes(b"left by an earlier run")
    with live_api(redis_url, workers=1, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) as (base, _proc):
        assert not stale.exists()
        assert http_call(base, "GET", "/metrics")[0] == 200
    assert tmp_path.is_dir()  # a directory the operator gave is kept


# --- in-process (one worker, no multiprocess dir) -------------------------------------------------------------


def post(client, body=None, **kwargs) -> str:
    """A select through Flask's test client; closing the response is when the decision gets counted."""
    response = client.post("/scheduler/select", json=body, **kwargs)
    response.close()
    return response.get_data(as_text=True)


def sample(name: str, **labels: str) -> float:
    TALLY.flush()  # what the refresher does every tick
    return telemetry.API.get_sample_value(name, labels) or 0.0


def test_pools_nobody_configured_are_counted_under_one_label_value(client):
    before = sample("llmsched_decisions_total", pool=telemetry.UNKNOWN_POOL, result="none", reason="unknown_pool")
    for i in range(5):
        body = {"pool_name": f"made-up-{i}-{random.random()}", "partition": "Common", "members": ["10.0.0.1:80"]}
        assert post(client, body) == "none"
    fams = families(client.get("/metrics").get_data(as_text=True))
    pools = {s.labels["pool"] for s in fams["llmsched_decisions"].samples}
    assert not any(p.startswith("made-up") for p in pools)
    assert (
        sample("llmsched_decisions_total", pool=telemetry.UNKNOWN_POOL, result="none", reason="unknown_pool")
        == before + 5
    )


def test_none_answers_carry_the_reason_class_and_fallback_its_own_result(client, store):
    from llmsched.shared.config_model import FallbackConfig

    stale = sample("llmsched_decisions_total", pool="old:Common", result="none", reason="stale")
    fallback = sample("llmsched_decisions_total", pool="fb:Common", result="fallback", reason="pool_fallback")
    seed(store, MEMBERS, pool="old", now=time.time() - 600)  # each seed publishes only its own pool
    post(client, {"pool_name": "old", "partition": "Common", "members": list(MEMBERS)})
    seed(store, MEMBERS, pool="fb", fallback=FallbackConfig(pool_fallback=True))
    post(client, {"pool_name": "fb", "partition": "Common", "members": list(MEMBERS)})
    assert sample("llmsched_decisions_total", pool="old:Common", result="none", reason="stale") == stale + 1
    assert (
        sample("llmsched_decisions_total", pool="fb:Common", result="fallback", reason="pool_fallback") == fallback + 1
    )


def test_every_reason_a_decision_can_give_has_its_own_label_class():
    from llmsched.shared.routing.reasons import Reason

    labels = [reason.label for reason in Reason]
    assert len(set(labels)) == len(labels), labels
    assert "other" not in labels


def test_rejected_select_requests_are_counted_by_status(client):
    before_400, before_422 = (
        sample("llmsched_decisions_rejected_total", status="400"),
        sample("llmsched_decisions_rejected_total", status="422"),
    )
    post(client, {"pool_name": "", "partition": "Common", "members": ["10.0.0.1:80"]})
    post(client, data=b"{not json", content_type="application/json")
    assert sample("llmsched_decisions_rejected_total", status="400") == before_400 + 1
    assert sample("llmsched_decisions_rejected_total", status="422") == before_422 + 1


def test_scores_shares_ages_and_config_version_are_read_from_redis_at_scrape_time(client, store):
    snapshot = seed(store, MEMBERS)
    fams = families(client.get("/metrics").get_data(as_text=True))
    scores = {m["id"]: m["score"] for m in snapshot["members"]}
    for member, score in scores.items():
        assert value(fams, "llmsched_member_score", pool="p1:Common", member=member) == pytest.approx(score)
        assert value(fams, "llmsched_member_eligible", pool="p1:Common", member=member) == 1
    shares = {m: value(fams, "llmsched_member_expected_share", pool="p1:Common", member=m) for m in MEMBERS}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-4)
    total = sum(s for s in scores.values() if s > 0)
    assert shares == {m: pytest.approx(max(s, 0) / total, abs=1e-4) for m, s in scores.items()}
    assert 0 <= value(fams, "llmsched_pool_scores_age_seconds", pool="p1:Common") < 60
    version = store.config_version()
    assert value(fams, "llmsched_config_info", version=version) == 1
    assert value(fams, "llmsched_redis_up") == 1


def test_stale_members_are_not_eligible_and_get_no_expected_share(client, store):
    seed(store, MEMBERS, now=time.time() - 600)
    fams = families(client.get("/metrics").get_data(as_text=True))
    for member in MEMBERS:
        assert value(fams, "llmsched_member_eligible", pool="p1:Common", member=member) == 0
        assert value(fams, "llmsched_member_expected_share", pool="p1:Common", member=member) == 0
        assert value(fams, "llmsched_member_data_age_seconds", pool="p1:Common", member=member) >= 600


def test_metrics_answer_with_redis_down_and_say_so():
    dead = Store(connect(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2), "llmsched")
    response = create_app(dead).test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    fams = families(response.get_data(as_text=True))
    assert value(fams, "llmsched_redis_up") == 0
    assert "llmsched_decision_duration_seconds" in fams


def test_a_metrics_dir_left_by_a_killed_api_is_removed_by_the_next_run(tmp_path, monkeypatch):
    import subprocess
    import sys

    from llmsched.api import metrics_dir

    monkeypatch.setattr(metrics_dir.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"{metrics_dir.PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{metrics_dir.PREFIX}{os.getppid()}-def"
    for d in (left, live):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"x")
    env: dict[str, str] = {}
    metrics_dir.private_metrics_dir(env)
    assert not left.exists() and live.exists()
    made = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    assert made.parent == tmp_path and made.name.startswith(f"{metrics_dir.PREFIX}{os.getpid()}-")
    assert env[metrics_dir.OWNED_ENV] == "1"
    given = {"PROMETHEUS_MULTIPROC_DIR": "/somewhere"}
    metrics_dir.private_metrics_dir(given)
    assert given == {"PROMETHEUS_MULTIPROC_DIR": "/somewhere"}


def test_batched_observations_fill_the_same_buckets_and_sum_as_one_observe_each():
    from prometheus_client import Histogram

    from llmsched.api.metrics import observe_all

    bounds = (0.001, 0.002, 0.005)
    values = [0.0005, 0.001, 0.0011, 0.002, 0.004, 0.005, 0.0051, 3.0]  # bounds themselves, between, above all
    one, batched = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "h", buckets=bounds, registry=one)
    h2 = Histogram("h", "h", buckets=bounds, registry=batched)
    for v in values:
        h1.observe(v)
    observe_all(h2, values)
    samples = [
        [(s.name, s.labels, s.value) for m in reg.collect() for s in m.samples if s.name != "h_created"]
        for reg in (one, batched)
    ]
    assert samples[0] == samples[1]
    assert [s for s in samples[1] if s[0] == "h_bucket"][-1][2] == len(values)
