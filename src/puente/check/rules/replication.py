"""Rule 5: the synchronous standby is on another site than the leader.

With Patroni's synchronous mode (``postgresql_synchronous_mode``, the role's default) an acknowledged
write must exist on another site, so a site loss loses nothing. Any member not tagged
``postgresql_patroni_tags: {nosync: true}`` may be chosen as the synchronous standby: a site with two such
candidates lets the leader's own neighbour be its synchronous standby. The lab's pattern: on each site one
candidate, the others ``nosync`` (onprem-db2), and members on at least two sites.
"""

from __future__ import annotations

from collections import defaultdict

from ansible.module_utils.parsing.convert_bool import boolean

from puente.check.findings import Finding
from puente.check.inventory import Deployment

GROUP = "postgresql"


def _flag(value: object) -> bool:
    try:
        return boolean(value, strict=False)
    except TypeError:
        return False


def check(d: Deployment) -> list[Finding]:
    members = d.members(GROUP)
    synchronous = [m for m in members if _flag(d.value(m, "postgresql_synchronous_mode", True))]
    if not synchronous:
        return []  # asynchronous replication chosen on purpose (roles/postgresql/README.md)
    candidates: dict[str, list[str]] = defaultdict(list)
    sites_with_members: set[str] = set()
    for host in members:
        sites = d.sites_of(host)
        site = sites[0] if len(sites) == 1 else "(no single site)"
        sites_with_members.add(site)
        tags = d.value(host, "postgresql_patroni_tags", {}) or {}
        if not (isinstance(tags, dict) and _flag(tags.get("nosync", False))):
            candidates[site].append(host)
    out = []
    for site, hosts in sorted(candidates.items()):
        if len(hosts) > 1:
            out.append(
                Finding(
                    "sync-standby-same-site",
                    f"group {GROUP}, site {site}",
                    f"{len(hosts)} synchronous-standby candidates on one site ({', '.join(sorted(hosts))}): "
                    "when one leads, the other can be its synchronous standby, and losing the site loses "
                    "acknowledged writes.",
                    "keep one candidate per site and tag the others "
                    "`postgresql_patroni_tags: {nosync: true}` (host vars, as inventories/lab/hosts.yml does "
                    f"for onprem-db2), e.g. {sorted(hosts)[-1]}.",
                )
            )
    if len(sites_with_members) == 1:
        (site,) = sites_with_members
        out.append(
            Finding(
                "sync-standby-same-site",
                f"group {GROUP}",
                f"every PostgreSQL member is on site {site}: the synchronous standby is always on the "
                "leader's site, so losing it loses the database.",
                "add a member on the other site (the cloud members come from the Pulumi stack's cloudNodes "
                "through inventories/<env>/pulumi.yml).",
            )
        )
    return out
