"""Routing between the lab's sites: the host is the sites' router, and it must not hide who is talking.

Podman (CNI) masquerades everything that leaves a site's network, so a cloud node reaching an on-prem node
would appear as the host's bridge address (10.89.1.1) and every firewall rule written with the peer's real
address (Patroni replication, etcd peers, HAProxy checks) would refuse it. One nat rule per pair of sites
returns early from POSTROUTING, before CNI's MASQUERADE: traffic between sites keeps its source address, the
way a routed WAN between two private networks does. Traffic to anywhere else is still masqueraded (apt).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import permutations

from puente.lab.inventory import Site
from puente.shell import run

COMMENT = "puente-lab: keep source addresses between sites"


def _rule(src: str, dst: str) -> list[str]:
    return ["POSTROUTING", "-s", src, "-d", dst, "-m", "comment", "--comment", COMMENT, "-j", "RETURN"]


def keep_source_addresses(sites: Iterable[Site]) -> None:
    """Insert (once) a RETURN rule for every ordered pair of site subnets."""
    subnets = sorted({str(s.subnet) for s in sites})
    for src, dst in permutations(subnets, 2):
        rule = _rule(src, dst)
        if run(["iptables", "-t", "nat", "-C", *rule], check=False, capture=True, quiet=True).returncode:
            run(["iptables", "-t", "nat", "-I", rule[0], "1", *rule[1:]])


def forget_sites(sites: Iterable[Site]) -> None:
    """Delete the RETURN rules that involve ``sites`` (``lab down``)."""
    gone = {str(s.subnet) for s in sites}
    out = (
        run(["iptables", "-t", "nat", "-S", "POSTROUTING"], check=False, capture=True, quiet=True).stdout
        or ""
    )
    for line in out.splitlines():
        if COMMENT not in line:
            continue
        words = line.split()
        src, dst = words[words.index("-s") + 1], words[words.index("-d") + 1]
        if src in gone or dst in gone:
            run(["iptables", "-t", "nat", "-D", *_rule(src, dst)], check=False)
