"""Pool members: identity, parsing of the forms BIG-IP uses, and what BIG-IP's session/state mean for routing.

A member's identity is `address:port` where `address` keeps a route domain (`10.0.0.1%2`), exactly as the iRule
sends it (`active_members -list` gives "addr port"). IPv6 addresses are compared in canonical form, so
`fe80:0:0:0:0:0:0:12` and `fe80::12` are the same member, while the answer repeats the string BIG-IP sent.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass

# BIG-IP session/state → our status (the f5-ansible mapping; docs/poller.md, "Member state").
ENABLED_STATES = frozenset({"up", "unchecked", "fqdn-up", "user-up"})


@dataclass(frozen=True)
class Member:
    """One pool member as the poller saw it on BIG-IP."""

    address: str  # as BIG-IP gives it, route domain kept: "10.0.0.1%2", "2001:db8::1"
    port: int
    name: str = ""  # BIG-IP's member name ("10.0.0.1:8000", "2001:db8::1.80", "_auto_10.1.2.3:8000")
    session: str = "monitor-enabled"
    state: str = "up"
    ratio: int = 1
    priority_group: int = 0
    ephemeral: bool = False

    @property
    def id(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def host(self) -> str:
        """The network address: route domain stripped."""
        return strip_route_domain(self.address)

    @property
    def status(self) -> str:
        """enabled, disabled, forced_offline or down."""
        return member_status(self.session, self.state)

    @property
    def available(self) -> bool:
        """True when BIG-IP itself would send this member new connections."""
        return self.status == "enabled"

    def to_dict(self) -> dict:
        """The member as stored in a pool's membership document, with its derived id and status."""
        return {**asdict(self), "id": self.id, "status": self.status}

    @classmethod
    def from_dict(cls, doc: dict) -> Member:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in fields})


def member_status(session: str, state: str) -> str:
    if state == "user-down":
        return "forced_offline"
    if session == "user-disabled":
        return "disabled"
    if state in ENABLED_STATES:
        return "enabled"
    return "down"  # monitor says down, or still checking: not safe to send to


def strip_route_domain(address: str) -> str:
    return address.split("%", 1)[0]


def canonical_address(address: str) -> str:
    """Lower-cased, IPv6-compressed form of an address, route domain kept."""
    host, sep, domain = address.partition("%")
    try:
        host = ipaddress.ip_address(host).compressed
    except ValueError:
        host = host.lower()
    return f"{host}{sep}{domain}"


def member_key(address: str, port: int) -> str:
    """The key under which two spellings of one member compare equal."""
    return f"{canonical_address(address)}:{port}"


def parse_candidate(text: str) -> tuple[str, int] | None:
    """Parse an iRule candidate "addr:port" (split on the last ':'); None when it is not one."""
    if not isinstance(text, str):
        return None
    address, sep, port_text = text.rpartition(":")
    # ASCII digits only: str.isdigit() also accepts '²' (int() then fails) and other scripts' digits.
    if not sep or not address or not (port_text.isascii() and port_text.isdigit()):
        return None
    port = int(port_text)
    if not 0 < port < 65536:
        return None
    return address, port


def parse_member_name(name: str) -> tuple[str, int] | None:
    """Split a BIG-IP member name into (address, port): IPv6 names use '.' before the port."""
    name = name.rsplit("/", 1)[-1]
    sep = "." if name.count(":") >= 2 else ":"
    address, found, port_text = name.rpartition(sep)
    if not found or not port_text.isdigit():
        return None
    port = int(port_text)
    if not 0 < port < 65536:
        return None
    return address, port
