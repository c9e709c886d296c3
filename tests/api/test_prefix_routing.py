"""Select with the iRule's optional `prefix`/`model` fields: validation (4xx naming the field), sticky routing
through the shared prefix index, at most one Redis round trip with fingerprints and none without, two real API
processes sharing the index, and Redis gone = decisions without hints."""

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
    clients = [store.client, app.extensions["llmsched.routing"].prefix.reader]
    for c in clients:
        real_pipeline, real_execute = c.pipeline, c.execute_command

        def counting_pipeline(*a, _real=real_pipeline, **kw):
            pipe = _real(*a, **kw)
            real = pipe.execute
            pipe.execute = lambda *x, **y: (trips.append("pipeline"), real(*x, **y))[1]
            return pipe

        c.pipeline = counting_pipeline
        c.execute_command = lambda *a, _real=real_execute, **kw: (trips.append(a[0]), _real(*a, **kw))[1]
    return trips


def test_no_round_trip_without_fingerprints_and_exactly_one_with_them(store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    app = create_app(store, random.Random(3))
    client = app.test_client()
    post(client, body())  # the worker has the pool in memory from here on
    app.extensions["llmsched.routing"].stop()  # only the requests themselves could touch Redis now
    trips = _count_trips(app, store)
    for _ in range(20):
        assert post(client, body(model="llama")).data.decode() in MEMBERS
    assert trips == []
    for i in range(20):
        assert post(client, body(prefix=fingerprints(f"x{i}", 64))).status_code == 200
    assert trips == ["EVAL"] * 20  # the records wait for the refresher: not one write on the decision path


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


def test_a_record_made_by_one_api_process_is_seen_by_another_within_20_ms(redis_url, store):
    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    with api_process(redis_url) as a, api_process(redis_url) as b:
        for port in (a, b):  # both have the pool in memory before the measured exchanges
            assert _select(port, body()) in MEMBERS
        pairs = []
        for doc in range(12):
            fps = fingerprints(f"doc{doc}")
            first = _select(a, body(prefix=fps))
            time.sleep(0.020)
            pairs.append((first, _select(b, body(prefix=fps[:5] + fingerprints(f"q{doc}")[:3]))))
    assert len({first for first, _ in pairs}) > 1  # the first answers are spread (no hint yet)
    assert [second for _, second in pairs] == [first for first, _ in pairs]
    assert store.client.exists(Keys().pool_prefix("p1:Common", pairs[0][0]))


def test_an_unreachable_prefix_index_leaves_the_decision_to_the_load_pick(client, store):
    import redis

    seed(store, dict.fromkeys(MEMBERS, M), herd_control=False)
    index = client.application.extensions["llmsched.routing"].prefix
    index.reader = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.05, socket_timeout=0.05)
    for i in range(5):
        r = post(client, body(prefix=fingerprints(f"d{i}")))
        assert r.status_code == 200 and r.data.decode() in MEMBERS


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
