"""Turning iControl REST pool-member items into `Member`s, and pool names into iControl URL paths.

Handles every member form iControl REST reports (docs/poller.md): IPv4, IPv6 (`addr.port` names), route domains
(`%N` kept in `Member.address`), named nodes (the IP comes from `address`), FQDN template members (address `any6`:
skipped, they carry no address) and their auto-populated `_auto_...` ephemeral members (real members). Optional keys
may be missing (older TMOS versions, `$select`): nothing but `name` is required."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from llmsched.shared.members import Member, parse_member_name, strip_route_domain

# What the poller reads of each member; everything else (monitor, connectionLimit, ...) stays on BIG-IP.
MEMBER_FIELDS = ("name", "address", "session", "state", "ratio", "priorityGroup", "ephemeral", "fqdn")
NO_ADDRESS = frozenset({"any6", "any", "::", "0.0.0.0"})


def pool_full_path(name: str, partition: str) -> str:
    """`/Partition/[sub.folder/]pool`: "app.app/pool" in Common is /Common/app.app/pool; "/P/x" is taken as is."""
    if name.startswith("/"):
        return name
    return f"/{partition}/{name}"


def members_path(name: str, partition: str) -> str:
    """The encoded URL path of a pool's member collection, with the `$select` query (its `$` stays literal)."""
    tilde = quote(pool_full_path(name, partition).replace("/", "~"), safe="~._-")
    return f"/mgmt/tm/ltm/pool/{tilde}/members?$select={','.join(MEMBER_FIELDS)}"


@dataclass
class ParsedMembers:
    members: list[Member] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: why", for a warning; FQDN templates excluded
    templates: list[str] = field(default_factory=list)  # FQDN template members (no address of their own)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(strip_route_domain(address))
    except ValueError:
        return False
    return True


def parse_member(item: dict[str, Any]) -> Member | str | None:
    """A `Member`, None for an FQDN template member, or the reason the item cannot be used."""
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return "no name"
    address = item.get("address")
    if isinstance(address, str) and address.strip() in NO_ADDRESS:
        return None
    parsed = parse_member_name(name)
    if parsed is None:
        return "name has no usable port (expected addr:port, or ipv6.port)"
    name_host, port = parsed
    if not isinstance(address, str) or not address.strip():
        # Without `address` (very old versions) the name is all there is; a named node's name is no IP.
        address = name_host.removeprefix("_auto_")
    address = address.strip()
    if not _is_ip(address):
        return f"address {address!r} is not an IP address"
    ephemeral = item.get("ephemeral", False)
    defaults = Member(address="", port=0)
    return Member(
        address=address,
        port=port,
        name=name,
        session=str(item.get("session") or defaults.session),
        state=str(item.get("state") or defaults.state),
        ratio=_int(item.get("ratio"), defaults.ratio),
        priority_group=_int(item.get("priorityGroup"), defaults.priority_group),
        ephemeral=ephemeral is True or str(ephemeral).lower() == "true",  # a string "true"/"false" on the wire
    )


def parse_members(body: Any) -> ParsedMembers:
    """Members of a collection answer; a collection with no members may omit `items` altogether."""
    out = ParsedMembers()
    items = body.get("items", []) if isinstance(body, dict) else []
    if not isinstance(items, list):
        items = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            out.skipped.append(f"{item!r}: not an object")
            continue
        result = parse_member(item)
        if result is None:
            out.templates.append(str(item.get("name")))
        elif isinstance(result, str):
            out.skipped.append(f"{item.get('name')!r}: {result}")
        elif result.id not in seen:
            seen.add(result.id)
            out.members.append(result)
    return out
