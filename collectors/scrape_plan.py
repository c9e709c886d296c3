"""Which URL to scrape for each pool member, and which members share one URL.

URL: `{schema}://{host}:{port}{path}`; host is the member's address without its BIG-IP route domain (`%N` is
BIG-IP's, not the network's), IPv6 in brackets; port is `metrics.port` when set, else the member's own port.

The original's Known Issue 1: with `metrics.port` set, members on one IP were all scraped at the
same URL and silently got the same numbers. Here metrics are always stored under each member's own id, and
members that map to one URL are scraped once, the result shared explicitly (`Target.member_ids`); the scraper
warns that those members cannot be told apart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from llmsched.shared.config_model import MetricsConfig
from llmsched.shared.members import Member


@dataclass(frozen=True)
class Target:
    url: str
    member_ids: tuple[str, ...]  # every member whose metrics this one scrape stands for

    @property
    def shared(self) -> bool:
        return len(self.member_ids) > 1


def url_host(host: str) -> str:
    """`host` as it goes into a URL authority: IPv6 literals compressed and in brackets."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # an IPv4 literal never fails; this is a DNS name
    return f"[{address.compressed}]" if address.version == 6 else host


def metrics_url(metrics: MetricsConfig, member: Member) -> str:
    port = metrics.port if metrics.port is not None else member.port
    return f"{metrics.schema}://{url_host(member.host)}:{port}{metrics.path}"


def plan_targets(metrics: MetricsConfig, members: Iterable[Member]) -> list[Target]:
    """One target per distinct URL, in first-member order; a member id appears once."""
    by_url: dict[str, list[str]] = {}
    for member in members:
        ids = by_url.setdefault(metrics_url(metrics, member), [])
        if member.id not in ids:
            ids.append(member.id)
    return [Target(url, tuple(ids)) for url, ids in by_url.items()]
