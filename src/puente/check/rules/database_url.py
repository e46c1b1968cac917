"""Rule 6: the API reaches the database through the leader-following endpoint, never a fixed member.

``api_database_url`` (and ``api_database_read_url`` when set) must name the site's load balancer (HAProxy
on a ``loadbalancers`` host: :5432 follows the Patroni leader, :5433 the site's leader or synchronous
standby). A URL whose host is a ``postgresql`` member — by inventory name or ``ansible_host`` — breaks
writes as soon as another member leads. A host the inventory does not know (a VIP, a DNS name) is trusted.
"""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlsplit

from puente.check.findings import Finding, hosts_phrase
from puente.check.inventory import Deployment, TemplateProblem
from puente.check.values import origin

URL_VARS = ("api_database_url", "api_database_read_url")


def _addresses(d: Deployment, group: str) -> dict[str, str]:
    """Every name a host of ``group`` answers to (inventory name, short name, ansible_host) -> host."""
    names: dict[str, str] = {}
    for host in d.members(group):
        names[host] = names[host.split(".")[0]] = host
        address = d.hosts[host].vars.get("ansible_host") if host in d.hosts else None
        if address:
            try:
                names[str(d.template(host, address))] = host
            except TemplateProblem:
                names[str(address)] = host
    return names


def check(d: Deployment) -> list[Finding]:
    members, balancers = _addresses(d, "postgresql"), _addresses(d, "loadbalancers")
    fixed: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for api in d.members("api_nodes"):
        for var in URL_VARS:
            raw = d.hosts[api].vars.get(var) if api in d.hosts else None
            if not raw:
                continue
            try:
                host = urlsplit(str(d.template(api, raw))).hostname or ""
            except (TemplateProblem, ValueError):
                continue  # an undefined part is rule 1's to report
            if host in members and host not in balancers:
                fixed[(origin(raw) or f"host {api}", var, host, members[host])].append(api)
    balancer_list = ", ".join(sorted(set(balancers.values()))) or "none in the inventory"
    return [
        Finding(
            "database-url-fixed-member",
            f"{where} {var}",
            f"the API node(s) {hosts_phrase(apis)} connect to {host}, the PostgreSQL member {member}: "
            "writes fail whenever Patroni promotes another member.",
            f"point {var} at the site's load balancer ({balancer_list}; port 5432 for writes, 5433 for "
            "reads), which follows the leader.",
        )
        for (where, var, host, member), apis in sorted(fixed.items())
    ]
