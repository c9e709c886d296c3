from llmsched.shared.members import Member, member_key, member_status, parse_candidate, parse_member_name


def test_candidate_splits_on_the_last_colon_so_ipv6_works():
    assert parse_candidate("2001:db8::1:8000") == ("2001:db8::1", 8000)
    assert parse_candidate("10.0.0.1%2:8000") == ("10.0.0.1%2", 8000)


def test_candidate_without_a_valid_port_is_rejected():
    for bad in ("garbage", "127.0.0.1:abc", "127.0.0.1:", ":80", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:-1"):
        assert parse_candidate(bad) is None, bad
    assert parse_candidate(42) is None  # type: ignore[arg-type]


def test_bigip_ipv6_member_names_use_a_dot_before_the_port():
    assert parse_member_name("2001:db8::1.80") == ("2001:db8::1", 80)
    assert parse_member_name("/Common/10.0.0.1%3:8000") == ("10.0.0.1%3", 8000)
    assert parse_member_name("_auto_10.1.2.3:8000") == ("_auto_10.1.2.3", 8000)
    assert parse_member_name("noport") is None


def test_member_key_treats_ipv6_spellings_as_one_member_and_keeps_route_domains():
    assert member_key("fe80:0:0:0:0:0:0:12", 80) == member_key("FE80::12", 80)
    assert member_key("10.0.0.1%2", 80) != member_key("10.0.0.1", 80)


def test_bigip_session_and_state_map_to_a_routing_status():
    assert member_status("monitor-enabled", "up") == "enabled"
    assert member_status("user-enabled", "unchecked") == "enabled"
    assert member_status("user-disabled", "up") == "disabled"
    assert member_status("user-disabled", "user-down") == "forced_offline"
    assert member_status("monitor-enabled", "down") == "down"
    assert member_status("monitor-enabled", "checking") == "down"


def test_member_round_trips_through_its_stored_form_with_id_and_status():
    m = Member(address="10.0.0.1%2", port=8000, session="user-disabled", state="up")
    doc = m.to_dict()
    assert doc["id"] == "10.0.0.1%2:8000" and doc["status"] == "disabled"
    assert Member.from_dict(doc) == m
    assert m.host == "10.0.0.1"
