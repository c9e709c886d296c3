"""The WSGI fast path answers select exactly as the Flask route would, and hands everything else to Flask."""

import random

from llmsched.api.app import create_app

from tests.helpers import seed

M = {"waiting_queue": 1.0, "cache_usage": 0.3, "running_req": 2.0}
BODY = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"]}


def test_fast_path_and_flask_route_give_identical_bodies_and_types(store):
    seed(store, {"10.0.0.1:8000": M})
    app = create_app(store, random.Random(1))
    fast = app.test_client().post("/scheduler/select", json=BODY)
    flask_only = app.test_client()
    app.wsgi_app = app.wsgi_app.flask_wsgi  # bypass the fast path
    slow = flask_only.post("/scheduler/select", json=BODY)
    assert (fast.status_code, fast.data, fast.headers["Content-Type"]) == (
        slow.status_code,
        slow.data,
        slow.headers["Content-Type"],
    )
    bad_fast = create_app(store).test_client().post("/scheduler/select", json={**BODY, "members": []})
    bad_slow = flask_only.post("/scheduler/select", json={**BODY, "members": []})
    assert (
        (bad_fast.status_code, bad_fast.json)
        == (bad_slow.status_code, bad_slow.json)
        == (400, {"detail": "members cannot be empty"})
    )


def test_unexpected_error_in_the_fast_path_is_a_json_500(store, monkeypatch):
    import llmsched.api.fastpath

    def boom(*_):
        raise RuntimeError("boom")

    monkeypatch.setattr(llmsched.api.fastpath, "answer_select", boom)
    r = create_app(store).test_client().post("/scheduler/select", json=BODY)
    assert r.status_code == 500 and r.json == {"detail": "Internal Server Error"}


def test_other_paths_and_methods_go_to_flask(store):
    client = create_app(store).test_client()
    assert client.get("/scheduler/select").status_code == 405
    assert client.get("/livez").json == {"status": "alive"}


def test_a_decision_is_counted_on_a_reply_less_connection_without_a_second_round_trip(store):
    import time

    from tests.helpers import seed as seed_pool

    seed_pool(store, {"10.0.0.1:8000": M})
    app = create_app(store, random.Random(1))
    client = app.test_client()
    for _ in range(3):
        response = client.post("/scheduler/select", json=BODY)
        assert response.data == b"10.0.0.1:8000"
        response.close()  # as a WSGI server does once the answer is sent: that is when the decision is counted
    key = "llmsched:pool:{p1:Common}:dispatch"
    deadline = time.monotonic() + 2
    while store.client.hget(key, "10.0.0.1:8000") != b"3" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.client.hget(key, "10.0.0.1:8000") == b"3"
    assert 0 < store.client.ttl(key) <= 60
    # Redis applied the three HINCRBYs (and the EXPIRE), yet nothing came back on the counting connection: its
    # replies are off. With replies on, ":1\r\n" etc. would be waiting to be read on that socket.
    conn = app.extensions["llmsched.dispatch"]._conn
    assert conn is not None, "decisions must be counted on the recorder's own connection"
    store.client.ping()  # a round trip on another connection: Redis has answered everything sent before it
    assert not conn.can_read(timeout=0.2), "the counting connection received replies"
