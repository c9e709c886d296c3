"""The iControl REST client against the BIG-IP emulator over real HTTPS on 127.0.0.1."""

from __future__ import annotations

import pytest

from llmsched.collectors.f5_client import F5Client, fingerprint
from llmsched.collectors.f5_errors import F5AuthError, F5HTTPError, F5NotFound, F5TLSError, F5Unavailable, F5Unreachable
from llmsched.collectors.f5_members import MEMBER_FIELDS, members_path, pool_full_path
from llmsched.shared.errors import F5Error

from tests.collectors.conftest import F5_PASSWORD, BigIP, ManualClock
from tests.conftest import free_port


def by_id(parsed) -> dict:
    return {m.id: m for m in parsed.members}


# --- token life cycle ------------------------------------------------------------------------------------------
async def test_login_extends_the_token_to_36000_s_and_reuses_it_across_calls(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config())
    try:
        await client.pool_members("vllm_pool")
        await client.pool_members("vllm_pool")
        assert client.logins == 1
        [token] = bigip.state.tokens.values()
        assert token.timeout == 36000 and token.generation == 2  # PATCHed once
        assert token.provider == "tmos"
    finally:
        await client.close()


async def test_login_uses_the_configured_login_provider(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config(login_provider="corp-ldap"))
    try:
        await client.pool_members("vllm_pool")
        [token] = bigip.state.tokens.values()
        assert token.provider == "corp-ldap"
    finally:
        await client.close()


async def test_unknown_login_provider_is_an_auth_error_naming_user_and_provider(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config(login_provider="nope"))
    try:
        with pytest.raises(F5AuthError) as info:
            await client.pool_members("vllm_pool")
        assert info.value.status == 401
        assert "'admin'" in str(info.value) and "'nope'" in str(info.value)
    finally:
        await client.close()


async def test_token_is_renewed_before_its_local_expiry_without_waiting_for_a_401(
    bigip: BigIP, clock: ManualClock
) -> None:
    # A box that refuses the 36000 s extension: the token keeps its 20 s life (the PATCH gets 406).
    await bigip.admin("POST", "/settings", {"token_timeout": 20, "max_token_timeout": 20})
    client = F5Client(bigip.f5_config(), clock=clock)
    try:
        await client.pool_members("vllm_pool")
        first = set(bigip.state.tokens)
        clock.advance(17)  # 3 s left, more than the renewal margin (2 s): reuse
        await client.pool_members("vllm_pool")
        assert client.logins == 1
        clock.advance(1.5)  # 1.5 s left: renew now, before BIG-IP would refuse it
        await client.pool_members("vllm_pool")
        assert client.logins == 2 and client.relogins_after_401 == 0
        assert not first & set(bigip.state.tokens), "the replaced token is deleted on BIG-IP"
    finally:
        await client.close()


@pytest.mark.parametrize("how", ["revoked", "expired on BIG-IP"])
async def test_a_token_refused_with_401_gets_one_new_login_and_the_call_succeeds(bigip: BigIP, how: str) -> None:
    client = F5Client(bigip.f5_config())
    try:
        await client.pool_members("vllm_pool")
        if how == "revoked":
            await bigip.admin("POST", "/tokens/revoke", {})
        else:
            await bigip.admin("POST", "/settings", {"advance_clock": 36001})
        parsed = await client.pool_members("vllm_pool")
        assert len(parsed.members) == 3
        assert client.logins == 2 and client.relogins_after_401 == 1
    finally:
        await client.close()


async def test_changed_password_gives_an_auth_error_and_costs_one_login_per_authenticate(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config())
    try:
        await client.pool_members("vllm_pool")
        await bigip.admin("POST", "/users", {"username": "admin", "password": "rotated"})
        await bigip.admin("POST", "/tokens/revoke", {})
        with pytest.raises(F5AuthError) as info:
            await client.pool_members("vllm_pool")
        assert info.value.status == 401 and "'admin'" in str(info.value)
        attempts = client.login_attempts
        for _ in range(3):  # further calls fail at once: no login storm that could lock the account
            with pytest.raises(F5AuthError):
                await client.pool_members("v6_pool", "TEST2")
        assert client.login_attempts == attempts
        with pytest.raises(F5AuthError):
            await client.authenticate()  # the next cycle tries once more
        assert client.login_attempts == attempts + 1
    finally:
        await client.close()


async def test_close_deletes_the_token_on_bigip(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config())
    await client.pool_members("vllm_pool")
    assert len(bigip.state.tokens) == 1
    await client.close()
    assert bigip.state.tokens == {}


# --- Basic auth and TLS ----------------------------------------------------------------------------------------
async def test_basic_auth_reads_members_without_creating_tokens(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config(auth="basic"))
    try:
        await client.authenticate()
        assert len((await client.pool_members("vllm_pool")).members) == 3
        assert bigip.state.tokens == {} and client.logins == 0
    finally:
        await client.close()


async def test_basic_auth_with_a_wrong_password_is_an_auth_error(bigip: BigIP) -> None:
    await bigip.admin("POST", "/users", {"username": "admin", "password": "rotated"})
    client = F5Client(bigip.f5_config(auth="basic"))
    try:
        with pytest.raises(F5AuthError) as info:
            await client.authenticate()
        assert info.value.status == 401
    finally:
        await client.close()


async def test_tls_is_verified_by_default_and_fails_clearly_without_the_private_ca(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config(ca_bundle=None))
    try:
        with pytest.raises(F5TLSError) as info:
            await client.pool_members("vllm_pool")
        assert info.value.status is None
        assert "ca_bundle" in str(info.value) and "not trusted" in str(info.value)
    finally:
        await client.close()


async def test_an_unreadable_ca_bundle_is_a_tls_error_naming_the_file(bigip: BigIP, tmp_path) -> None:
    missing = str(tmp_path / "gone.pem")
    client = F5Client(bigip.f5_config(ca_bundle=missing))
    try:
        with pytest.raises(F5TLSError) as info:
            await client.pool_members("vllm_pool")
        assert f"f5.ca_bundle {missing} cannot be used" in str(info.value)
    finally:
        await client.close()


async def test_verify_false_connects_to_a_self_signed_bigip_and_warns(bigip: BigIP, logs: list[str]) -> None:
    client = F5Client(bigip.f5_config(ca_bundle=None, verify=False))
    try:
        assert len((await client.pool_members("vllm_pool")).members) == 3
    finally:
        await client.close()
    assert any(line.startswith("WARNING") and "NOT checked" in line for line in logs)


# --- pool members ----------------------------------------------------------------------------------------------
async def test_select_asks_bigip_only_for_the_fields_the_poller_uses(bigip: BigIP) -> None:
    path = members_path("vllm_pool", "Common")
    assert path.endswith("/members?$select=name,address,session,state,ratio,priorityGroup,ephemeral,fqdn")
    client = F5Client(bigip.f5_config())
    try:
        body = await client._call("GET", path, "probe")
    finally:
        await client.close()
    assert all(set(item) <= set(MEMBER_FIELDS) for item in body["items"])
    assert "%24select" not in body["selfLink"] and "$select=name%2Caddress" in body["selfLink"]


async def test_member_session_and_state_become_status(bigip: BigIP) -> None:
    await bigip.set_member("vllm_pool", "10.0.0.1:8000", "disabled")
    await bigip.set_member("vllm_pool", "10.0.0.2:8000", "forced_offline")
    await bigip.set_member("vllm_pool", "10.0.0.3:8000", "monitor_down")
    client = F5Client(bigip.f5_config())
    try:
        members = by_id(await client.pool_members("vllm_pool"))
    finally:
        await client.close()
    assert {k: m.status for k, m in members.items()} == {
        "10.0.0.1:8000": "disabled",
        "10.0.0.2:8000": "forced_offline",
        "10.0.0.3:8000": "down",
    }
    assert members["10.0.0.1:8000"].session == "user-disabled"
    assert (members["10.0.0.2:8000"].ratio, members["10.0.0.3:8000"].priority_group) == (2, 10)


async def test_ipv6_route_domain_named_node_and_fqdn_members_are_parsed(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config())
    try:
        parsed = await client.pool_members("v6_pool", "TEST2")
    finally:
        await client.close()
    members = by_id(parsed)
    # The FQDN template member (address any6) is skipped; its auto-populated member is a real one.
    assert set(members) == {"2001:db8::1:80", "2.3.2.2%30:8080", "10.1.2.3:8000", "10.156.153.10:443"}
    v6 = members["2001:db8::1:80"]
    assert (v6.address, v6.port, v6.name) == ("2001:db8::1", 80, "2001:db8::1.80")
    rd = members["2.3.2.2%30:8080"]
    assert (rd.address, rd.host) == ("2.3.2.2%30", "2.3.2.2")
    auto = members["10.1.2.3:8000"]
    assert auto.ephemeral is True and auto.name == "_auto_10.1.2.3:8000"
    assert members["10.156.153.10:443"].name == "web01:443"
    assert parsed.templates == ["app.example.com:8000"] and parsed.skipped == []


async def test_pool_in_a_sub_folder_is_addressed_with_tildes(bigip: BigIP) -> None:
    assert pool_full_path("myapp.app/pool", "Common") == "/Common/myapp.app/pool"
    assert "/mgmt/tm/ltm/pool/~Common~myapp.app~pool/members?" in members_path("myapp.app/pool", "Common")
    client = F5Client(bigip.f5_config())
    try:
        assert [m.id for m in (await client.pool_members("myapp.app/pool")).members] == ["10.9.9.9:80"]
    finally:
        await client.close()


async def test_empty_pool_whose_answer_has_no_items_has_no_members(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config())
    try:
        parsed = await client.pool_members("empty_pool")
    finally:
        await client.close()
    assert parsed.members == [] and parsed.skipped == []


async def test_missing_pool_is_not_found_and_missing_partition_names_the_folder(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config())
    try:
        with pytest.raises(F5NotFound) as info:
            await client.pool_members("nope")
        assert info.value.status == 404 and "/Common/nope" in str(info.value)
        with pytest.raises(F5HTTPError) as folder:
            await client.pool_members("vllm_pool", "NOPART")
        assert folder.value.status == 400 and "folder (/NOPART)" in str(folder.value)
    finally:
        await client.close()


@pytest.mark.parametrize("status", [500, 503, 404])
async def test_server_errors_and_restjavad_restarts_are_unavailable_not_missing(bigip: BigIP, status: int) -> None:
    client = F5Client(bigip.f5_config())
    try:
        await client.authenticate()
        await bigip.admin("POST", "/faults", {"fail_next": 1, "status": status, "path_prefix": "/mgmt/tm"})
        with pytest.raises(F5Unavailable) as info:  # a restjavad 404 ("URI not registered") is transient
            await client.pool_members("vllm_pool")
        assert info.value.status == status
        assert len((await client.pool_members("vllm_pool")).members) == 3
    finally:
        await client.close()


async def test_connection_refused_is_unreachable_with_no_status() -> None:
    from llmsched.shared.config_model import F5Config
    from llmsched.shared.secrets import Secret

    client = F5Client(F5Config(host="127.0.0.1", port=free_port(), password=Secret(F5_PASSWORD), timeout=2.0))
    try:
        with pytest.raises(F5Unreachable) as info:
            await client.pool_members("vllm_pool")
        assert info.value.status is None and "127.0.0.1" in str(info.value)
    finally:
        await client.close()


async def test_a_bigip_slower_than_the_timeout_is_unreachable(bigip: BigIP) -> None:
    client = F5Client(bigip.f5_config(timeout=0.3))
    try:
        await bigip.admin("POST", "/faults", {"latency": 2.0})
        with pytest.raises(F5Unreachable) as info:
            await client.pool_members("vllm_pool")
        assert "within 0.3 s" in str(info.value)
    finally:
        await bigip.admin("DELETE", "/faults")
        await client.close()


# --- secrets ---------------------------------------------------------------------------------------------------
async def test_password_and_tokens_never_reach_logs_or_error_messages(
    bigip: BigIP, clock: ManualClock, logs: list[str]
) -> None:
    seen_tokens: set[str] = set()
    errors: list[str] = []
    client = F5Client(bigip.f5_config(), clock=clock)
    try:
        await client.pool_members("vllm_pool")
        seen_tokens |= bigip.token_values()
        await bigip.admin("POST", "/tokens/revoke", {})
        await client.pool_members("vllm_pool")  # 401 -> re-login
        seen_tokens |= bigip.token_values()
        clock.advance(36000)  # local expiry -> renewal + DELETE
        await client.pool_members("vllm_pool")
        seen_tokens |= bigip.token_values()
        for call in (lambda: client.pool_members("nope"), lambda: client.pool_members("x", "NOPART")):
            try:
                await call()
            except F5Error as exc:
                errors.append(str(exc))
        await bigip.admin("POST", "/users", {"username": "admin", "password": "rotated"})
        await bigip.admin("POST", "/tokens/revoke", {})
        try:
            await client.pool_members("vllm_pool")
        except F5Error as exc:
            errors.append(str(exc))
    finally:
        await client.close()
    assert len(seen_tokens) == 3 and client.logins == 3
    text = "\n".join(logs + errors)
    assert F5_PASSWORD not in text
    for token in seen_tokens:
        assert token not in text
        assert token[:8] not in text
    assert any(fingerprint(t) in text for t in seen_tokens), "logs identify tokens by fingerprint"
