"""The optional admin token guards every endpoint but decisions, health checks and metrics."""

import random

import pytest

from llmsched.api.app import create_app
from llmsched.api.guard import COOKIE

from tests.helpers import seed

M = {"waiting_queue": 1.0, "cache_usage": 0.3, "running_req": 2.0}
BODY = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"]}
GUARDED = [
    ("get", "/pools/status"),
    ("get", "/pools/p1/Common/status"),
    ("get", "/ui"),
    ("get", "/ui/data.json"),
    ("post", "/pools/p1/Common/simulate"),
    ("post", "/pools/p1/Common/analyze"),
    ("get", "/api_key_health"),
]


@pytest.fixture()
def guarded(store):
    seed(store, {"10.0.0.1:8000": M})
    return create_app(store, random.Random(1), admin_token="s3cret-token").test_client()


@pytest.mark.parametrize("method,path", GUARDED)
def test_guarded_endpoints_refuse_requests_without_the_token(guarded, method, path):
    r = getattr(guarded, method)(path, json=BODY)
    assert r.status_code == 401 and "admin token" in r.json["detail"]
    assert "s3cret" not in r.get_data(as_text=True)
    assert getattr(guarded, method)(path, json=BODY, headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.parametrize("method,path", GUARDED)
def test_guarded_endpoints_answer_with_the_token_in_a_header(guarded, method, path):
    r = getattr(guarded, method)(path, json=BODY, headers={"Authorization": "Bearer s3cret-token"})
    assert r.status_code == 200


def test_the_status_page_trades_a_query_token_once_for_a_cookie_and_a_redirect_without_it(guarded):
    r = guarded.get("/ui?token=s3cret-token")
    assert r.status_code == 303 and r.headers["Location"].endswith("/ui")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "s3cret-token" not in cookie  # an HMAC of the token, not the token
    # The test client keeps the cookie: the page, its data and the other guarded endpoints now answer.
    assert guarded.get("/ui").status_code == 200
    assert guarded.get("/ui/data.json").status_code == 200
    assert guarded.post("/pools/p1/Common/simulate", json=BODY).status_code == 200


def test_a_wrong_cookie_or_a_query_token_anywhere_but_the_page_is_refused(guarded):
    guarded.set_cookie(COOKIE, "0" * 64)
    assert guarded.get("/ui/data.json").status_code == 401
    assert guarded.get("/ui/data.json?token=s3cret-token").status_code == 401
    assert guarded.get("/ui?token=wrong").status_code == 401


def test_the_page_script_and_style_sheet_load_without_the_token(guarded):
    for path in ("/ui/static/ui.js", "/ui/static/ui.css"):
        assert guarded.get(path).status_code == 200, path


@pytest.mark.parametrize("path", ["/ui", "/ui/data.json", "/pools/status", "/health", "/nope"])
def test_every_flask_answer_carries_the_browser_hardening_headers(client, store, path):
    seed(store, {"10.0.0.1:8000": M})
    r = client.get(path)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    policy = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    if path == "/ui":
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    else:
        assert policy.startswith("default-src 'none'")


def test_a_refused_request_carries_the_headers_too(guarded):
    r = guarded.get("/pools/status")
    assert r.status_code == 401 and r.headers["X-Content-Type-Options"] == "nosniff"


def test_decisions_health_and_metrics_stay_open_for_bigip_and_prometheus(guarded):
    assert guarded.post("/scheduler/select", json=BODY).data == b"10.0.0.1:8000"
    assert guarded.get("/livez").status_code == 200
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/metrics").status_code == 200


def test_without_a_token_configured_everything_is_open(client, store):
    seed(store, {"10.0.0.1:8000": M})
    assert client.get("/pools/status").status_code == 200


def test_a_browser_session_against_a_real_api_gets_the_script_and_the_data_with_the_cookie(redis_url, tmp_path):
    """Through gunicorn: the redirect sets the cookie, ui.js loads without a token, the data answers with the
    cookie and lists the pool, and the token never reaches the access log."""
    import http.client

    from tests.api.live_api import live_api
    from tests.helpers import make_store

    seed(make_store(redis_url), {"10.0.0.1:8000": M})
    log = tmp_path / "api.log"
    env = {"LLMSCHED_ADMIN_TOKEN": "live-tok-42aa", "LLMSCHED_ACCESS_LOG": "1", "LLMSCHED_LOG_LEVEL": "info"}
    with live_api(redis_url, workers=1, env=env, log=log) as (base, _proc):
        host, port = base.removeprefix("http://").split(":")

        def get(path, headers=None):
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", path, headers=headers or {})
            reply = conn.getresponse()
            body = reply.read()
            conn.close()
            return reply, body

        login, _ = get("/ui?token=live-tok-42aa")
        assert login.status == 303 and login.getheader("Location").endswith("/ui")
        cookie = login.getheader("Set-Cookie").split(";", 1)[0]
        script, text = get("/ui/static/ui.js")
        assert script.status == 200 and b"/ui/data.json" in text
        assert "javascript" in script.getheader("Content-Type")
        data, body = get("/ui/data.json", {"Cookie": cookie})
        assert data.status == 200 and b"p1:Common" in body
        assert get("/ui/data.json")[0].status == 401
    assert "live-tok-42aa" not in log.read_text()


def test_chromium_opens_the_guarded_page_with_the_token_once_and_renders_the_pools(redis_url, tmp_path):
    """Issue 12 item 4 in a real browser: `/ui?token=` used to stay at "loading…" (ui.js needed the token too)."""
    from tests.api.live_api import live_api
    from tests.api.test_ui import CHROMIUM, Rendered, chromium, seed_status
    from tests.helpers import make_store

    if CHROMIUM is None:
        pytest.skip("no chromium binary (make browser-deps installs it)")
    seed_status(make_store(redis_url))
    env = {"LLMSCHED_ADMIN_TOKEN": "browser-tok-9d", "LLMSCHED_REDIS_TIMEOUT": "0.5"}
    with live_api(redis_url, workers=1, env=env) as (base, _proc):
        done = chromium(f"{base}/ui?token=browser-tok-9d", tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    page = Rendered()
    page.feed(done.stdout)
    assert page.state == "live", done.stdout[-2000:]
    assert {r["pool"] for r in page.rows} == {"llm_pool:Common", "other_pool:Common"}
