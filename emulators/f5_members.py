"""Pools and pool members of the BIG-IP emulator, and their iControl REST JSON shapes.

A member's availability is stored as three facts: the monitor result (`health`), whether the member is
enabled, and whether it is forced offline. The wire pair (`session`, `state`) is derived from them the way a
real BIG-IP reports it and f5-ansible's `bigip_pool_member` reads it, so every combination the admin API can
produce is one a real box could show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LINK_HOST = "https://localhost"  # every real selfLink uses this host, whatever address was called
HEALTH_VALUES = ("up", "down", "checking", "unchecked", "fqdn-up", "fqdn-down", "fqdn-up-no-addr")

# Admin-API shorthands -> the changes they make (enabled, forced_offline, health); None leaves a fact alone.
ACTIONS: dict[str, tuple[bool | None, bool | None, str | None]] = {
    "enabled": (True, False, None),
    "enable": (True, False, None),
    "disabled": (False, False, None),
    "disable": (False, False, None),
    "forced_offline": (False, True, None),
    "force_offline": (False, True, None),
    "monitor_up": (None, None, "up"),
    "up": (None, None, "up"),
    "monitor_down": (None, None, "down"),
    "down": (None, None, "down"),
    "checking": (None, None, "checking"),
    "unchecked": (None, None, "unchecked"),
    "no_monitor": (None, None, "unchecked"),
}


def split_member_name(name: str) -> tuple[str, int]:
    """`10.0.0.1%2:8000` -> ("10.0.0.1%2", 8000); IPv6 `2001:db8::1.80` -> ("2001:db8::1", 80)."""
    bare = name[len("_auto_") :] if name.startswith("_auto_") else name
    sep = "." if bare.count(":") >= 2 else ":"
    host, _, port = bare.rpartition(sep)
    if not host or not port.isdigit():
        raise ValueError(f"not a pool member name (host:port or ipv6.port): {name!r}")
    return host, int(port)


def member_name(host: str, port: int) -> str:
    """The name BIG-IP gives a member: IPv6 hosts use "." before the port, everything else ":"."""
    sep = "." if host.split("%", 1)[0].count(":") >= 2 else ":"
    return f"{host}{sep}{port}"


def tilde(path: str) -> str:
    """`/Common/app.app/pool` -> `~Common~app.app~pool` (the URL form of a full path)."""
    return path.replace("/", "~")


def pool_path(ref: str) -> str:
    """URL pool reference -> full path: `~Common~p` and `~Common~app.app~p` as is, a bare `p` is in /Common."""
    if ref.startswith("~") or ref.startswith("/"):
        return ref.replace("~", "/")
    return f"/Common/{ref}"


def link_escape(segment: str) -> str:
    # A route domain's "%" must be percent-encoded for the selfLink to be a valid URL.
    return segment.replace("%", "%25")


@dataclass
class Member:
    name: str  # as BIG-IP names it: "10.0.0.1:8000", "2001:db8::1.80", "_auto_10.1.2.3:80"
    address: str  # "10.0.0.1", "10.0.0.1%2", "any6" for an FQDN template member
    partition: str = "Common"
    health: str = "up"  # the monitor's verdict; "unchecked" when no monitor applies
    enabled: bool = True
    forced_offline: bool = False
    ratio: int = 1
    priority_group: int = 0
    connection_limit: int = 0
    dynamic_ratio: int = 1
    monitor: str = "default"
    ephemeral: bool = False
    fqdn: dict[str, Any] = field(default_factory=lambda: {"autopopulate": "disabled"})
    description: str | None = None
    generation: int = 1

    @property
    def port(self) -> int:
        return split_member_name(self.name)[1]

    @property
    def full_path(self) -> str:
        return f"/{self.partition}/{self.name}"

    def session_state(self) -> tuple[str, str]:
        """The reported (session, state) pair, per the f5-ansible mapping (docs/poller.md, "Member state")."""
        if self.forced_offline:
            return "user-disabled", "user-down"
        if not self.enabled:
            return "user-disabled", self.health  # a disabled member keeps its monitor state
        if self.health in ("up", "down", "checking"):
            return "monitor-enabled", self.health
        return "user-enabled", self.health  # unchecked and the fqdn-* states

    def apply_action(self, action: str) -> None:
        try:
            enabled, forced, health = ACTIONS[action]
        except KeyError:
            raise ValueError(f"unknown member action {action!r}; one of {sorted(ACTIONS)}") from None
        if enabled is not None:
            self.enabled = enabled
        if forced is not None:
            self.forced_offline = forced
        if health is not None:
            self.health = health
        self.generation += 1

    def apply_wire(self, session: str | None, state: str | None, *, admin: bool = False) -> None:
        """Apply iControl writes (`user-up`/`user-down`, `user-enabled`/`user-disabled`).

        With `admin=True` any reported pair is accepted too (e.g. session monitor-enabled, state down), so a
        config or test can describe a member exactly as it would appear on the wire.
        """
        if session is not None:
            if session in ("user-enabled", "monitor-enabled") and (admin or session == "user-enabled"):
                self.enabled, self.forced_offline = True, False
            elif session == "user-disabled":
                self.enabled = False
            else:
                raise ValueError(f"invalid session {session!r}")
        if state is not None:
            if state == "user-down":
                self.enabled, self.forced_offline = False, True
            elif state == "user-up":
                self.forced_offline = False
            elif admin and state in HEALTH_VALUES:
                self.health = state
            else:
                raise ValueError(f"invalid state {state!r}")
        self.generation += 1

    def to_json(self, pool_tilde: str, version: str) -> dict[str, Any]:
        session, state = self.session_state()
        item: dict[str, Any] = {
            "kind": "tm:ltm:pool:members:membersstate",
            "name": self.name,
            "partition": self.partition,
            "fullPath": self.full_path,
            "generation": self.generation,
            "selfLink": f"{LINK_HOST}/mgmt/tm/ltm/pool/{pool_tilde}/members/"
            f"{link_escape(tilde(self.full_path))}?ver={version}",
            "address": self.address,
            "connectionLimit": self.connection_limit,
            "dynamicRatio": self.dynamic_ratio,
            "ephemeral": "true" if self.ephemeral else "false",  # a string on the wire, not a bool
            "fqdn": dict(self.fqdn),
            "inheritProfile": "enabled",
            "logging": "disabled",
            "monitor": self.monitor,
            "priorityGroup": self.priority_group,
            "rateLimit": "disabled",
            "ratio": self.ratio,
            "session": session,
            "state": state,
        }
        if self.description is not None:
            item["description"] = self.description
        return item


@dataclass
class Pool:
    name: str
    partition: str = "Common"
    sub_path: str | None = None  # iApp folder, e.g. "myapp.app"
    members: list[Member] = field(default_factory=list)
    monitor: str = "/Common/http"
    load_balancing_mode: str = "round-robin"
    description: str | None = None
    generation: int = 1

    @property
    def full_path(self) -> str:
        middle = f"/{self.sub_path}" if self.sub_path else ""
        return f"/{self.partition}{middle}/{self.name}"

    @property
    def tilde_path(self) -> str:
        return tilde(self.full_path)

    def find_member(self, ref: str) -> Member | None:
        """Look a member up by `~Part~name`, `/Part/name` or a bare name."""
        path = ref.replace("~", "/")
        for m in self.members:
            if path in (m.full_path, m.name):
                return m
        return None

    def to_json(self, version: str, expand: bool = False) -> dict[str, Any]:
        members_link = f"{LINK_HOST}/mgmt/tm/ltm/pool/{self.tilde_path}/members?ver={version}"
        ref: dict[str, Any] = {"link": members_link, "isSubcollection": True}
        if expand and self.members:  # a pool with no members has no `items` here either
            ref["items"] = [m.to_json(self.tilde_path, version) for m in self.members]
        item: dict[str, Any] = {
            "kind": "tm:ltm:pool:poolstate",
            "name": self.name,
            "partition": self.partition,
            "fullPath": self.full_path,
            "generation": self.generation,
            "selfLink": f"{LINK_HOST}/mgmt/tm/ltm/pool/{self.tilde_path}?ver={version}",
            "allowNat": "yes",
            "allowSnat": "yes",
            "ignorePersistedWeight": "disabled",
            "ipTosToClient": "pass-through",
            "ipTosToServer": "pass-through",
            "linkQosToClient": "pass-through",
            "linkQosToServer": "pass-through",
            "loadBalancingMode": self.load_balancing_mode,
            "minActiveMembers": 0,
            "minUpMembers": 0,
            "minUpMembersAction": "failover",
            "minUpMembersChecking": "disabled",
            "queueDepthLimit": 0,
            "queueOnConnectionLimit": "disabled",
            "queueTimeLimit": 0,
            "reselectTries": 0,
            "serviceDownAction": "none",
            "slowRampTime": 10,
            "membersReference": ref,
        }
        if self.sub_path:
            item["subPath"] = self.sub_path
        if self.monitor:
            item["monitor"] = self.monitor
        if self.description is not None:
            item["description"] = self.description
        return item


def members_from_config(spec: dict[str, Any], default_partition: str) -> list[Member]:
    """Build members from a config/admin entry; an auto-populating FQDN entry also yields its `_auto_` members.

    Accepted keys: `name` | `address`+`port` | `fqdn`+`port`; `partition`; `state` (an ACTIONS shorthand) or
    wire `session`/`state`; `health`; `ratio`; `priorityGroup`; `connectionLimit`; `monitor`; `description`;
    `autopopulate` and `resolved` (list of IPs) for FQDN members.
    """
    partition = spec.get("partition", default_partition)
    common = dict(
        partition=partition,
        ratio=int(spec.get("ratio", 1)),
        priority_group=int(spec.get("priorityGroup", spec.get("priority_group", 0))),
        connection_limit=int(spec.get("connectionLimit", spec.get("connection_limit", 0))),
        monitor=str(spec.get("monitor", "default")),
    )
    out: list[Member] = []
    if "fqdn" in spec:
        host, port = str(spec["fqdn"]), int(spec["port"])
        auto = bool(spec.get("autopopulate", True))
        resolved = [str(a) for a in spec.get("resolved", [])]
        fqdn = {
            "addressFamily": "ipv4",
            "autopopulate": "enabled" if auto else "disabled",
            "downInterval": 5,
            "interval": "3600",
            "tmName": host,
        }
        template = Member(
            name=member_name(host, port),
            address="any6",
            fqdn=fqdn,
            health="fqdn-up" if resolved else "fqdn-up-no-addr",
            **common,
        )
        out.append(template)
        for ip in resolved if auto else []:
            out.append(
                Member(
                    name=f"_auto_{member_name(ip, port)}",
                    address=ip,
                    ephemeral=True,
                    fqdn={"autopopulate": "enabled", "tmName": host},
                    health="up",
                    **common,
                )
            )
    else:
        if "name" in spec:
            name = str(spec["name"])
            host, _ = split_member_name(name)
        else:
            host = str(spec["address"])
            name = member_name(host, int(spec["port"]))
        out.append(Member(name=name, address=str(spec.get("address", host)), **common))
    for m in out[:1]:  # availability settings describe the entry itself, not its auto-populated children
        if "description" in spec:
            m.description = str(spec["description"])
        if "health" in spec:
            m.apply_wire(None, str(spec["health"]), admin=True)
        state = spec.get("state")
        if isinstance(state, str) and state in ACTIONS:
            m.apply_action(state)
        elif state is not None or "session" in spec:
            m.apply_wire(spec.get("session"), state, admin=True)
        m.generation = 1
    return out
