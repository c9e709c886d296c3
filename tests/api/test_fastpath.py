"""The WSGI fast path answers select exactly as the Flask route would, and hands everything else to Flask."""
import random

from api.app import create_app
from tests.helpers import seed

M = {"waiting_queue": 1.0, "cache_usage": 0.3, "running_req": 2.0}
BODY = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"]}


def test_fast_path_and_flask_route_give_identical_bodies_and_types(store):
    seed(store, {"10.0.0.1:8000": M})
    app = create_app(store, random.Random(1))
    fast = app.test_client().post("/scheduler/select", json=BODY)
    flask_only = app.test_client()
    app.wsgi_app = app.wsgi_app.flask_wsgi          # bypass the fast path
    slow = flask_only.post("/scheduler/select", json=BODY)
    assert (fast.status_code, fast.data, fast.headers["Content-Type"]) == \
        (slow.status_code, slow.data, slow.headers["Content-Type"])
    bad_fast = create_app(store).test_client().post("/scheduler/select", json={**BODY, "members": []})
    bad_slow = flask_only.post("/scheduler/select", json={**BODY, "members": []})
    assert (bad_fast.status_code, bad_fast.json) == (bad_slow.status_code, bad_slow.json) == \
        (400, {"detail": "members cannot be empty"})


def test_unexpected_error_in_the_fast_path_is_a_json_500(store, monkeypatch):
    import api.fastpath

    def boom(*_):
        raise RuntimeError("boom")
    monkeypatch.setattr(api.fastpath, "answer_select", boom)
    r = create_app(store).test_client().post("/scheduler/select", json=BODY)
    assert r.status_code == 500 and r.json == {"detail": "Internal Server Error"}


def test_other_paths_and_methods_go_to_flask(store):
    client = create_app(store).test_client()
    assert client.get("/scheduler/select").status_code == 405
    assert client.get("/livez").json == {"status": "alive"}
