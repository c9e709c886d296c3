"""The BIG-IP emulator over real HTTP(S): token flow, Basic auth, error shapes, members, admin API."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time

import aiohttp

from llmsched.emulators.f5_state import F5State

MEMBERS = "/mgmt/tm/ltm/pool/~Common~vllm_pool/members"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


def _restjavad(body: dict, code: int) -> None:
    assert body["code"] == code
    assert body["kind"] == ":resterrorresponse"
    assert set(body) == {"code", "message", "referer", "restOperationId", "kind"}


async def test_login_envelope_over_verified_tls(f5):
    assert f5.base.startswith("https://") and f5.cert_path
    async with f5.session.post(
        f"{f5.base}/mgmt/shared/authn/login",
        json={"username": "admin", "password": "s3cret", "loginProviderName": "tmos"},
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    tok = body["token"]
    assert body["username"] == "admin" and body["loginProviderName"] == "tmos"
    assert body["loginReference"]["link"].startswith("https://localhost/mgmt/cm/system/authn/providers/tmos/")
    assert tok["token"] == tok["name"] and re.fullmatch(r"[A-Z2-7]{26}", tok["token"])
    assert tok["timeout"] == 1200 and tok["generation"] == 1
    assert tok["kind"] == "shared:authz:tokens:authtokenitemstate"
    assert tok["selfLink"] == f"https://localhost/mgmt/shared/authz/tokens/{tok['token']}"
    start = dt.datetime.strptime(tok["startTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    start_ms = round(start.timestamp() * 1000)
    assert tok["expirationMicros"] == (start_ms + 1200 * 1000) * 1000
    assert tok["lastUpdateMicros"] < start_ms * 1000
    assert abs(start.timestamp() - time.time()) < 5


async def test_login_failures_and_optional_fields(f5_http):
    url = f"{f5_http.base}/mgmt/shared/authn/login"
    async with f5_http.session.post(
        url, json={"username": "admin", "password": "nope", "loginProviderName": "tmos"}
    ) as resp:
        assert resp.status == 401
        body = await resp.json()
        _restjavad(body, 401)
        assert body["message"] == "Authentication failed."
    async with f5_http.session.post(
        url, json={"username": "admin", "password": "s3cret", "loginProviderName": "radius-x"}
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["message"] == "loginProviderName is invalid."
    # f5-icontrol-rest omits loginProviderName and adds a Basic header: both must be fine.
    async with f5_http.session.post(
        url, json={"username": "svc", "password": "svc-pw"}, headers=_basic("svc", "svc-pw")
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["token"]["userName"] == "svc"


async def test_token_really_expires(f5_http):
    f5_http.state.token_timeout = 1.0
    token = await f5_http.login()
    headers = {"X-F5-Auth-Token": token}
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=headers) as resp:
        assert resp.status == 200
    await asyncio.sleep(1.1)
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=headers) as resp:
        assert resp.status == 401
        body = await resp.json()
    _restjavad(body, 401)
    assert body["message"] == "X-F5-Auth-Token does not exist."


async def test_patch_extends_from_start_and_caps_at_max(f5_http):
    token = await f5_http.login()
    headers = {"X-F5-Auth-Token": token}
    url = f"{f5_http.base}/mgmt/shared/authz/tokens/{token}"
    async with f5_http.session.get(url, headers=headers) as resp:
        before = await resp.json()
    async with f5_http.session.patch(url, headers=headers, json={"timeout": "36000"}) as resp:
        assert resp.status == 200
        item = await resp.json()
    assert "token" in item and item["name"] == token  # the bare item, no {"token": ...} wrapper
    assert item["timeout"] == 36000 and item["generation"] == 2
    assert item["expirationMicros"] == before["expirationMicros"] + (36000 - 1200) * 1_000_000
    assert item["startTime"] == before["startTime"]
    async with f5_http.session.patch(url, headers=headers, json={"timeout": 36001}) as resp:
        assert resp.status == 406
        assert "36000 seconds" in (await resp.json())["message"]
    # 1300 s later the extended token still works; past 36000 s it does not.
    await f5_http.admin("POST", "/settings", {"advance_clock": 1300})
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=headers) as resp:
        assert resp.status == 200
    await f5_http.admin("POST", "/settings", {"advance_clock": 36000})
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=headers) as resp:
        assert resp.status == 401


async def test_get_delete_and_foreign_tokens(f5_http):
    admin_token = await f5_http.login()
    svc_token = await f5_http.login("svc", "svc-pw")
    base = f"{f5_http.base}/mgmt/shared/authz/tokens"
    async with f5_http.session.get(f"{base}/{admin_token}", headers={"X-F5-Auth-Token": svc_token}) as resp:
        assert resp.status == 400  # another user's token
    async with f5_http.session.get(base, headers={"X-F5-Auth-Token": admin_token}) as resp:
        coll = await resp.json()
    assert coll["kind"] == "shared:authz:tokens:authtokencollectionstate" and len(coll["items"]) == 2
    async with f5_http.session.delete(f"{base}/{svc_token}", headers={"X-F5-Auth-Token": svc_token}) as resp:
        assert resp.status in (200, 204)
    async with f5_http.session.get(f"{base}/{svc_token}", headers={"X-F5-Auth-Token": svc_token}) as resp:
        assert resp.status == 401
        assert (await resp.json())["message"] == "X-F5-Auth-Token does not exist."


async def test_per_user_token_limit_and_unknown_uri(f5_http):
    f5_http.state.max_tokens_per_user = 2
    await f5_http.login("svc", "svc-pw")
    token = await f5_http.login("svc", "svc-pw")
    async with f5_http.session.post(
        f"{f5_http.base}/mgmt/shared/authn/login",
        json={"username": "svc", "password": "svc-pw", "loginProviderName": "tmos"},
    ) as resp:
        assert resp.status == 400 and "maximum active login tokens" in (await resp.json())["message"]
    for _ in range(3):  # "admin" is exempt
        await f5_http.login()
    async with f5_http.session.get(f"{f5_http.base}/mgmt/tm/ltm/nothing", headers={"X-F5-Auth-Token": token}) as r:
        assert r.status == 404
        _restjavad(await r.json(), 404)


async def test_basic_auth_and_missing_credentials(f5_http):
    url = f5_http.base + MEMBERS
    async with f5_http.session.get(url, headers=_basic("admin", "s3cret")) as resp:
        assert resp.status == 200
    async with f5_http.session.get(url, headers=_basic("admin", "wrong")) as resp:
        assert resp.status == 401 and resp.reason == "F5 Authorization Required"
        _restjavad(await resp.json(), 401)
    async with f5_http.session.get(url, headers=_basic("ldapuser", "remote-pw")) as resp:
        assert resp.status == 401  # Basic is for local users only
    await f5_http.login("ldapuser", "remote-pw")  # ... they log in for a token
    async with f5_http.session.get(url) as resp:
        assert resp.status == 401
        body = await resp.json()
    _restjavad(body, 401)
    assert body["message"].startswith("Authorization failed: no user authentication header or token detected.")
    assert f"Uri:http://localhost:8100{MEMBERS}" in body["message"]


async def test_collection_shape_and_select(f5_http):
    auth = _basic("admin", "s3cret")
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=auth) as resp:
        body = await resp.json()
    assert body["kind"] == "tm:ltm:pool:members:memberscollectionstate"
    assert body["selfLink"] == "https://localhost/mgmt/tm/ltm/pool/~Common~vllm_pool/members?ver=16.1.3"
    first, second, third = body["items"]
    assert first["fullPath"] == "/Common/10.0.0.1:8000" and first["address"] == "10.0.0.1"
    assert (
        first["ephemeral"] == "false"
        and isinstance(first["ratio"], int)
        and first["fqdn"] == {"autopopulate": "disabled"}
    )
    assert first["selfLink"].startswith("https://localhost/mgmt/tm/ltm/pool/~Common~vllm_pool/members/~Common~")
    assert (second["ratio"], second["session"], second["state"]) == (2, "user-disabled", "up")
    assert (third["priorityGroup"], third["session"], third["state"]) == (10, "user-disabled", "user-down")
    url = f5_http.base + MEMBERS + "?$select=name,address,session,state"
    async with f5_http.session.get(url, headers=auth) as resp:
        body = await resp.json()
    assert "$select=name%2Caddress%2Csession%2Cstate&ver=16.1.3" in body["selfLink"]
    assert all(set(i) == {"name", "address", "session", "state"} for i in body["items"])


async def test_error_shapes_for_missing_objects(f5_http):
    auth = _basic("admin", "s3cret")
    async with f5_http.session.get(f"{f5_http.base}/mgmt/tm/ltm/pool/~Common~x/members", headers=auth) as resp:
        assert resp.status == 404
        assert await resp.json() == {
            "code": 404,
            "message": "01020036:3: The requested Pool (/Common/x) was not found.",
            "errorStack": [],
            "apiError": 3,
        }
    async with f5_http.session.get(f"{f5_http.base}/mgmt/tm/ltm/pool/~NOPE~x/members", headers=auth) as resp:
        assert resp.status == 400
        body = await resp.json()
        assert body["message"] == "The requested folder (/NOPE) was not found." and body["errorStack"] == []
    async with f5_http.session.get(f"{f5_http.base}{MEMBERS}/~Common~10.0.0.9:80", headers=auth) as resp:
        assert resp.status == 404
        assert "(/Common/vllm_pool /Common/10.0.0.9 80)" in (await resp.json())["message"]


async def test_ipv6_route_domain_fqdn_and_subfolder_members(f5_http):
    auth = _basic("admin", "s3cret")
    async with f5_http.session.get(f"{f5_http.base}/mgmt/tm/ltm/pool/~TEST2~v6_pool/members", headers=auth) as r:
        items = {i["name"]: i for i in (await r.json())["items"]}
    assert items["2001:db8::1.80"]["address"] == "2001:db8::1"
    assert items["2.3.2.2%30:8080"]["fullPath"] == "/TEST2/2.3.2.2%30:8080"
    assert items["2.3.2.2%30:8080"]["address"] == "2.3.2.2%30"
    fq = items["app.example.com:8000"]
    assert fq["address"] == "any6" and fq["fqdn"]["tmName"] == "app.example.com" and fq["state"] == "fqdn-up"
    auto = items["_auto_10.1.2.3:8000"]
    assert auto["ephemeral"] == "true" and auto["address"] == "10.1.2.3"
    # One member by URL: the route domain's "%" travels percent-encoded.
    url = f"{f5_http.base}/mgmt/tm/ltm/pool/~TEST2~v6_pool/members/~TEST2~2.3.2.2%2530:8080"
    async with f5_http.session.get(url, headers=auth) as r:
        assert r.status == 200 and (await r.json())["name"] == "2.3.2.2%30:8080"
    async with f5_http.session.get(
        f"{f5_http.base}/mgmt/tm/ltm/pool/~Common~myapp.app~pool/members", headers=auth
    ) as r:
        assert (await r.json())["items"][0]["name"] == "10.9.9.9:80"
    async with f5_http.session.get(f"{f5_http.base}/mgmt/tm/ltm/pool/~Common~empty_pool/members", headers=auth) as r:
        body = await r.json()
    assert "items" not in body and body["kind"] == "tm:ltm:pool:members:memberscollectionstate"


async def test_pool_collection_expand_and_filter(f5_http):
    auth = _basic("admin", "s3cret")
    url = f"{f5_http.base}/mgmt/tm/ltm/pool?expandSubcollections=true&$filter=partition+eq+Common"
    async with f5_http.session.get(url, headers=auth) as r:
        body = await r.json()
    assert body["kind"] == "tm:ltm:pool:poolcollectionstate"
    pools = {p["fullPath"]: p for p in body["items"]}
    assert set(pools) == {"/Common/vllm_pool", "/Common/myapp.app/pool", "/Common/empty_pool"}
    assert len(pools["/Common/vllm_pool"]["membersReference"]["items"]) == 3
    assert "items" not in pools["/Common/empty_pool"]["membersReference"]


async def test_member_state_table_via_admin_and_icontrol(f5_http):
    auth = _basic("admin", "s3cret")
    one = f"{MEMBERS}/~Common~10.0.0.1:8000"
    expected = [
        ({"state": "monitor_down"}, ("monitor-enabled", "down")),
        ({"state": "disabled"}, ("user-disabled", "down")),  # a disabled member keeps its monitor state
        ({"state": "forced_offline"}, ("user-disabled", "user-down")),
        ({"state": "enabled"}, ("monitor-enabled", "down")),
        ({"state": "monitor_up"}, ("monitor-enabled", "up")),
        ({"state": "unchecked"}, ("user-enabled", "unchecked")),  # no monitor
        ({"session": "monitor-enabled", "state": "checking"}, ("monitor-enabled", "checking")),
    ]
    for body, pair in expected:
        got = await f5_http.admin("PATCH", "/pools/~Common~vllm_pool/members/~Common~10.0.0.1:8000", body)
        assert (got["session"], got["state"]) == pair, body
        async with f5_http.session.get(f5_http.base + one, headers=auth) as r:
            item = await r.json()
        assert (item["session"], item["state"]) == pair
    # The f5-ansible writes on the real iControl URL.
    await f5_http.admin("PATCH", "/pools/vllm_pool/members/10.0.0.1:8000", {"state": "monitor_up"})
    for write, pair in (
        ({"state": "user-down", "session": "user-disabled"}, ("user-disabled", "user-down")),
        ({"state": "user-up", "session": "user-disabled"}, ("user-disabled", "up")),
        ({"state": "user-up", "session": "user-enabled"}, ("monitor-enabled", "up")),
    ):
        async with f5_http.session.patch(f5_http.base + one, headers=auth, json=write) as r:
            assert r.status == 200
            item = await r.json()
        assert (item["session"], item["state"]) == pair, write


async def test_admin_pools_tokens_password_faults(f5_http):
    await f5_http.admin(
        "PUT",
        "/pools/~Common~new_pool",
        {
            "members": [
                {"address": "fe80::12", "port": 443},
                {"address": "127.0.0.1", "port": 9000, "state": "disabled"},
            ]
        },
    )
    auth = _basic("admin", "s3cret")
    async with f5_http.session.get(f"{f5_http.base}/mgmt/tm/ltm/pool/~Common~new_pool/members", headers=auth) as r:
        names = [i["name"] for i in (await r.json())["items"]]
    assert names == ["fe80::12.443", "127.0.0.1:9000"]
    token = await f5_http.login()
    assert (await f5_http.admin("POST", "/tokens/revoke", {}))["revoked"] == 1
    async with f5_http.session.get(f5_http.base + MEMBERS, headers={"X-F5-Auth-Token": token}) as r:
        assert r.status == 401
    await f5_http.admin("POST", "/users", {"username": "admin", "password": "changed"})
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=auth) as r:
        assert r.status == 401
    auth = _basic("admin", "changed")
    await f5_http.admin("POST", "/faults", {"fail_next": 1, "status": 500, "path_prefix": "/mgmt/tm"})
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=auth) as r:
        assert r.status == 500
        assert await r.json() == {
            "code": 500,
            "message": "The connection to mcpd has been lost, try again.",
            "errorStack": [],
            "apiError": 32768001,
        }
    await f5_http.admin("POST", "/faults", {"fail_next": 1, "status": 503})
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=auth) as r:
        assert r.status == 503 and "Configuration Utility restarting" in await r.text()
    await f5_http.admin("POST", "/faults", {"latency": 0.2})
    t0 = time.monotonic()
    async with f5_http.session.get(f5_http.base + MEMBERS, headers=auth) as r:
        assert r.status == 200
    assert time.monotonic() - t0 >= 0.2
    await f5_http.admin("DELETE", "/faults")
    state = await f5_http.admin("GET", "/state")
    assert state["faults"]["latency"] == 0 and "/Common/new_pool" in state["pools"]


def test_config_file_yaml(tmp_path):
    path = tmp_path / "f5.yaml"
    path.write_text(
        "users: {admin: pw}\ntoken_timeout: 2\npools:\n  - name: p\n    partition: P1\n"
        "    members:\n      - {address: 10.0.0.1, port: 80, state: forced_offline}\n"
    )
    state = F5State.load(str(path))
    assert state.token_timeout == 2 and "P1" in state.partitions
    member = state.pools["/P1/p"].members[0]
    assert member.session_state() == ("user-disabled", "user-down") and member.partition == "P1"
