"""Rule 4: etcd (Patroni's DCS) keeps its quorum when any one site is lost.

Sites are the inventory's site groups; a member's site is the site group that contains it. With n members,
quorum is floor(n/2)+1: for every site s, the members outside s must still reach it — otherwise losing s
stops the DCS everywhere and no surviving Patroni member can be promoted (or stay leader).
"""

from __future__ import annotations

from collections import Counter

from puente.check.findings import Finding
from puente.check.inventory import Deployment

GROUP = "etcd"
FIX = (
    "spread the etcd members so no site holds a majority: one per site plus one at a third location (a "
    "witness), as inventories/lab does (onprem-db1, cloud-db1, witness1)."
)


def quorum(members: int) -> int:
    return members // 2 + 1


def check(d: Deployment) -> list[Finding]:
    members = d.members(GROUP)
    if not members:
        if d.members("postgresql"):
            return [
                Finding("etcd-quorum", f"group {GROUP}", "the etcd group is empty: Patroni has no DCS.", FIX)
            ]
        return []
    per_site: Counter[str] = Counter()
    for host in members:
        sites = d.sites_of(host)
        per_site[sites[0] if len(sites) == 1 else "(no single site)"] += 1
    n, need = len(members), quorum(len(members))
    spread = ", ".join(f"{site} {count}" for site, count in sorted(per_site.items()))
    out = []
    for site in sorted(set(d.sites) | set(per_site)):
        left = n - per_site[site]
        if left < need:
            out.append(
                Finding(
                    "etcd-quorum",
                    f"group {GROUP}",
                    f"losing site {site} leaves {left} of {n} etcd members, below the quorum of {need} "
                    f"(members per site: {spread}): Patroni on the surviving sites could not elect a leader.",
                    FIX,
                )
            )
    return out
