"""Select with the iRule's optional `prefix`/`model` fields: validation (4xx naming the field), sticky routing
through the shared prefix index, no Redis round trip on a decision with or without fingerprints (each worker
keeps a mirror of the index), replicas and real API processes sharing the index, and Redis gone."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import time

import pytest

from llmsched.api.app import create_app
from llmsched.shared.keys import Keys

from tests.helpers import api_process, seed

# Room for 7 more requests each (slack); herd control off so that the load the tests add never saturates them.
M = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 2.0}
MEMBERS = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"]


def body(members=MEMBERS, **extra):
    return {"pool_name": "p1", "partition": "Common", "members": members, **extra}


def fingerprints(text: str, n: int = 8) -> list[str]:
    """Chained like the iRule (deploy/f5/README.md section 6)."""
    out, digest = [], b""
    for i in range(n):
        digest = hashlib.sha1(digest + f"{text}:{i}".encode().ljust(512, b".")).digest()
        out.append(digest[:8].hex())
    return out


def post(client, payload):
    """A select; closing the response is what a WSGI server does after sending it, and what records it."""
    r = client.post("/scheduler/select", json=payload)
    r.close()
    return r


def flush(client) -> None:
    """Write the queued prefix records now, as the worker's refresher does every tick."""
    client.application.extensions["llmsched.routing"].prefix.flush()


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"prefix": "abcd"}, ["body", "prefix"]),
        ({"prefix": ["0123456789abcdef", "xyz"]}, ["body", "prefix", 1]),
        ({"prefix": ["0123456789abcde"]}, ["body", "prefix", 0]),
        ({"prefix": [7]}, ["body", "prefix", 0]),
        ({"prefix": ["0123456789abcdef"] * 65}, ["body", "prefix"]),
        ({"model": 3}, ["body", "model"]),
        ({"model": "m" * 257}, ["body", "model"]),
    ],
)
def test_bad_prefix_or_model_is_422_naming_the_field(client, store, extra, loc):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    r = post(client, body(**extra))
    assert r.status_code == 422
    assert [p["loc"] for p in r.get_json()["detail"]] == [loc]


def test_valid_prefix_and_model_are_accepted_and_an_empty_prefix_is_no_hint(client, store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    for extra in ({"prefix": fingerprints("a")}, {"prefix": [], "model": "llama"}, {"prefix": None}):
        r = post(client, body(**extra))
        assert r.status_code == 200 and r.data.decode() in MEMBERS
    assert post(client, body(prefix=[f.upper() for f in fingerprints("a")])).status_code == 200


def test_requests_sharing_a_prefix_stick_to_the_member_first_chosen(client, store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    firsts = {}
    for doc in range(12):
        fps = fingerprints(f"doc{doc}")
        firsts[doc] = post(client, body(prefix=fps)).data
        flush(client)
    assert len(set(firsts.values())) > 1  # without hints the load pick spreads the documents
    for doc, first in firsts.items():
        # Same document, a different question after it: the leading fingerprints match.
        fps = fingerprints(f"doc{doc}")[:6] + fingerprints(f"q{doc}")[:2]
        assert post(client, body(prefix=fps)).data == first


def test_the_model_keeps_prefixes_of_different_models_apart(client, store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    fps = fingerprints("shared")
    first = post(client, body(prefix=fps, model="llama")).data
    flush(client)
    index = client.application.extensions["llmsched.routing"].prefix
    ids = [m for m in MEMBERS]
    assert index.lookup("p1:Common", ids, [f"{f}@llama" for f in fps]) == {first.decode(): 8}
    assert index.lookup("p1:Common", ids, fps) == {}


def _count_trips(app, store):
    trips = []
    for c in (store.client, app.extensions["llmsched.routing"].prefix.client):
        real_pipeline, real_execute = c.pipeline, c.execute_command

        def counting_pipeline(*a, _real=real_pipeline, **kw):
            pipe = _real(*a, **kw)
            real = pipe.execute
            pipe.execute = lambda *x, **y: (trips.append("pipeline"), real(*x, **y))[1]
            return pipe

        c.pipeline = counting_pipeline
        c.execute_command = lambda *a, _real=real_execute, **kw: (trips.append(a[0]), _real(*a, **kw))[1]
    return trips


def test_no_round_trip_on_a_decision_with_or_without_fingerprints(store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    app = create_app(store, random.Random(3))
    client = app.test_client()
    post(client, body())  # the worker has the pool in memory from here on
    state = app.extensions["llmsched.routing"]
    state.tick()  # and follows its prefix records
    state.stop()  # only the requests themselves could touch Redis now
    trips = _count_trips(app, store)
    for _ in range(20):
        assert post(client, body(model="llama")).data.decode() in MEMBERS
    answers = [post(client, body(prefix=fingerprints(f"x{i % 4}", 64))).data for i in range(20)]
    assert trips == []  # lookups read the mirror; the records wait for the refresher
    assert answers[4:8] == answers[:4]  # and the mirror answered: each prompt went back where it went first
    state.tick()
    assert "pipeline" in trips  # the refresher writes them


def test_two_replicas_share_their_records_without_a_read_per_decision(store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    a, b = (create_app(store, random.Random(seed_)) for seed_ in (1, 2))
    ca, cb = a.test_client(), b.test_client()
    try:
        fps = fingerprints("doc")
        post(cb, body(prefix=fingerprints("other")))  # b decides with hints too: it reads the stream every tick
        first = post(ca, body(prefix=fps)).data.decode()
        index = b.extensions["llmsched.routing"].prefix
        deadline = time.monotonic() + 5.0  # a bound on the wait, not a speed requirement (benchmarks measure it)
        while index.lookup("p1:Common", None, fps) != {first: 8} and time.monotonic() < deadline:
            time.sleep(0.002)
        assert index.lookup("p1:Common", None, fps) == {first: 8}
        assert post(cb, body(prefix=fps[:5] + fingerprints("question")[:3])).data.decode() == first
    finally:
        for app in (a, b):
            app.extensions["llmsched.routing"].stop()


def test_redis_down_decides_without_hints_and_never_errors():
    from llmsched.shared.store import Store, connect

    store = Store(connect("redis://127.0.0.1:1/0", socket_timeout=0.05))
    app = create_app(store, random.Random(1))
    r = app.test_client().post("/scheduler/select", json=body(prefix=fingerprints("a")))
    assert r.status_code == 200 and r.data == b"none"
    app.extensions["llmsched.routing"].stop()


def _select(port: int, payload: dict) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/scheduler/select", json.dumps(payload), {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def test_records_made_by_one_api_process_steer_another_processs_decisions(redis_url, store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    log = Keys().pool_prefix_log("p1:Common")
    with api_process(redis_url) as a, api_process(redis_url) as b:
        for port in (a, b):  # both have the pool in memory before the measured exchanges
            assert _select(port, body()) in MEMBERS
        firsts = [_select(a, body(prefix=fingerprints(f"doc{doc}"))) for doc in range(12)]
        deadline = time.monotonic() + 5.0  # bounded waits, not speed requirements: A's refresher writes them
        while store.client.xlen(log) < 12 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.5)  # B reads the stream every 100 ms while it has not decided with hints lately
        seconds = [_select(b, body(prefix=fingerprints(f"doc{d}")[:5] + fingerprints(f"q{d}")[:3])) for d in range(12)]
    assert len(set(firsts)) > 1  # the first answers are spread (no hint yet)
    assert seconds == firsts
    assert store.client.exists(Keys().pool_prefix("p1:Common", firsts[0]))


def test_a_holder_is_left_once_the_decisions_sent_to_it_saturate_it(client, store):
    # Herd control on: each member runs 2 and has room for 7 more (slack), so the holder stays sticky while
    # (2 + sent since its scrape) / 9 < 1, i.e. for its first 7 decisions, then the load pick takes over.
    seed(store, dict.fromkeys(MEMBERS, M))
    fps = fingerprints("hot document")
    holder = post(client, body(prefix=fps)).data
    flush(client)
    answers = [post(client, body(prefix=fps)).data for _ in range(7)]
    assert answers[:6] == [holder] * 6
    assert answers[6] != holder
