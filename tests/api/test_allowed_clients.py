"""`global.api_allowed_clients`: only the listed sources may ask for decisions and read pool data; any other gets
403 and never touches herd-control counts. Unset keeps the API open and says so once at start."""

from __future__ import annotations

import http.client
import json
import random

import pytest

from llmsched.api.app import create_app
from llmsched.api.clients import AllowList, parse_networks

from tests.api.conftest import SyncedClient
from tests.api.live_api import live_api
from tests.helpers import make_store, seed

M = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}
BODY = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"]}
BIGIP = {"REMOTE_ADDR": "10.1.10.5"}
STRANGER = {"REMOTE_ADDR": "192.0.2.7"}


@pytest.fixture()
def guarded(store):
    seed(store, {"10.0.0.1:8000": M})
    app = create_app(store, random.Random(1), allowed=AllowList(parse_networks(["10.1.10.0/24", "2001:db8::5"])))
    app.test_client_class = SyncedClient
    yield app
    app.extensions["llmsched.routing"].stop()


def ask(client, source: dict) -> tuple[int, bytes]:
    response = client.post("/scheduler/select", json=BODY, environ_base=source)
    response.close()  # the server has sent the answer: the decision is counted now
    return response.status_code, response.data


def test_a_listed_source_gets_decisions_and_its_picks_are_counted(guarded):
    client = guarded.test_client()
    for source in (BIGIP, {"REMOTE_ADDR": "2001:db8::5"}, {"REMOTE_ADDR": "::ffff:10.1.10.9"}):
        assert ask(client, source) == (200, b"10.0.0.1:8000"), source
    state = guarded.extensions["llmsched.routing"]
    assert state.inputs("p1:Common")[2] == {"10.0.0.1:8000": 3}


def test_any_other_source_gets_403_on_select_and_never_touches_herd_counts(guarded, store):
    client = guarded.test_client()
    for _ in range(5):
        assert ask(client, STRANGER) == (403, b'{"detail":"this source is not in global.api_allowed_clients"}')
    state = guarded.extensions["llmsched.routing"]
    state.tick()  # what would have been counted is sent now
    assert state.inputs("p1:Common")[2] == {}
    assert store.client.exists(store.keys.pool_dispatch("p1:Common")) == 0


def test_what_if_and_status_endpoints_are_403_for_other_sources_but_health_and_metrics_stay_open(guarded):
    client = guarded.test_client()
    for method, path in (
        ("POST", "/pools/p1/Common/simulate"),
        ("POST", "/pools/p1/Common/analyze"),
        ("GET", "/pools/p1/Common/status"),
        ("GET", "/pools/status"),
        ("GET", "/ui/data.json"),
    ):
        assert client.open(path, method=method, json=BODY, environ_base=STRANGER).status_code == 403, path
        assert client.open(path, method=method, json=BODY, environ_base=BIGIP).status_code == 200, path
    for path in ("/health", "/livez", "/metrics"):
        assert client.get(path, environ_base=STRANGER).status_code == 200, path


def test_a_bad_entry_is_named():
    with pytest.raises(ValueError, match="'10.1.10.300' is not an IP address or CIDR"):
        parse_networks(["10.1.10.5", "10.1.10.300"])


def post(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/scheduler/select", json.dumps(BODY), {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_llmsched_api_warns_once_at_start_when_the_list_is_unset_and_enforces_it_when_set(redis_url, tmp_path):
    seed(make_store(redis_url), {"10.0.0.1:8000": M})
    log = tmp_path / "open.log"
    with live_api(redis_url, workers=2, log=log) as (base, _):
        assert post(int(base.rsplit(":", 1)[1])) == 200
    assert log.read_text().count("global.api_allowed_clients is not set") == 1
    log = tmp_path / "closed.log"
    with live_api(redis_url, env={"LLMSCHED_API_ALLOWED_CLIENTS": "10.1.10.0/24"}, log=log) as (base, _):
        assert post(int(base.rsplit(":", 1)[1])) == 403
    assert "global.api_allowed_clients is not set" not in log.read_text()
