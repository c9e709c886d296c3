"""Trusted sources (`global.api_allowed_clients`): who may ask for decisions and read the pools' layout.

Every select feeds herd control's dispatch counts, so anyone who can reach the API can steer traffic. With the
allow-list set (BIG-IP's self IPs), select, simulate, analyze and the status endpoints answer 403 to any other
source, before the request is read further, so they never touch herd counts. Health checks, /metrics and the
status page's HTML stay open (monitors and Prometheus). Unset keeps the API open; `llmsched api` then logs one
warning at start naming the key. The list reaches the workers as LLMSCHED_API_ALLOWED_CLIENTS
(comma-separated addresses or CIDRs).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

ENV = "LLMSCHED_API_ALLOWED_CLIENTS"
GUARDED_PREFIXES = ("/scheduler/select", "/pools/", "/ui/data.json")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str], where: str = ENV) -> tuple[Network, ...]:
    """Addresses or CIDRs -> networks; ValueError naming `where` and the bad item otherwise."""
    out = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            example = "e.g. 10.1.10.5 or 10.1.10.0/24"
            raise ValueError(f"{where}: {text!r} is not an IP address or CIDR ({example})") from None
    return tuple(out)


class AllowList:
    """None of `networks` means open. Checks are cached per address (BIG-IP uses a handful of self IPs)."""

    def __init__(self, networks: tuple[Network, ...] | None) -> None:
        self.networks = networks
        self._seen: dict[str, bool] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AllowList:
        raw = env.get(ENV)
        return cls(parse_networks(raw.split(",")) if raw is not None and raw.strip() else None)

    @property
    def is_open(self) -> bool:
        return self.networks is None

    def allows(self, address: str | None) -> bool:
        if self.networks is None:
            return True
        if not address:
            return False  # a UNIX socket peer has no address: only a front on the same host connects there
        known = self._seen.get(address)
        if known is None:
            known = self._check(address)
            if len(self._seen) < 10_000:
                self._seen[address] = known
        return known

    def _check(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.1.10.5 on a dual-stack listener is 10.1.10.5
        return any(ip.version == net.version and ip in net for net in self.networks or ())

    @staticmethod
    def guards(path: str) -> bool:
        return path.startswith(GUARDED_PREFIXES)


FORBIDDEN = b'{"detail":"this source is not in global.api_allowed_clients"}'
