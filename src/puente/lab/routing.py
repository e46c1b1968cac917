"""Routing between the lab's sites: the host is the sites' router, and it must not hide who is talking.

Podman (CNI) masquerades everything that leaves a site's network, so a cloud node reaching an on-prem node
would appear as the host's bridge address (10.89.1.1) and every firewall rule written with the peer's real
address (Patroni replication, etcd peers, HAProxy checks) would refuse it. One nat rule per pair of sites
returns early from POSTROUTING, before CNI's MASQUERADE: traffic between sites keeps its source address, the
way a routed WAN between two private networks does. Traffic to anywhere else is still masqueraded (apt).

Sites joined by the VPN (each has a node on the lab's WAN, its gateway: role vpn) reach each other only
through the tunnels, as a site's router sends the other site's prefixes to its VPN gateway:

- policy routes (``ip rule`` preferences 10890-10891, one table per site): a packet from one such site to
  another goes back into its own site, to that site's gateway, which carries it through IPsec over the WAN;
- ``inet puente_lab_sites`` (nft, the project's own table) fails closed: the host never delivers one such
  site's packet straight into the other's network, and sends no ICMP redirect that would teach a node to
  skip the host (the drills' cuts act on the host's forwarding);
- nodes that stand OUTSIDE their site keep the host's direct path: the lab's DNS node (group ``dns``) plays
  Route 53, whose health checkers see the sites from the internet, not through the tunnel.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import permutations

from puente.lab import podman
from puente.lab.inventory import Lab, Site
from puente.shell import run

COMMENT = "puente-lab: keep source addresses between sites"
# ip rule preferences (before the main table's 32766) and the first routing table of the sites' gateways.
EXEMPT_PREF = 10890
SITE_PREF = 10891
TABLE_BASE = 10890
NFT_TABLE = "puente_lab_sites"
# The nodes that stand outside their site (the lab's Route 53 stand-in): never routed through a tunnel.
OUTSIDE_GROUPS = ("dns",)


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


def quoted(name: str) -> str:
    return '"' + name + '"'


def _bridge(site: Site) -> str:
    found = podman.inspect("network", [site.network])
    name = found[0].get("network_interface") if found else None
    if not name:
        raise RuntimeError(f"podman network {site.network} has no bridge: run `puente lab up` first")
    return str(name)


def gateway_plan(lab: Lab) -> tuple[list[list[str]], list[list[str]], str]:
    """What ``through_gateways`` applies: ``ip rule`` and ``ip route`` argument lists, and the nft table."""
    joined = [(site, gw) for site in lab.sites.values() if (gw := lab.gateway_of(site.name)) is not None]
    outside = sorted({str(n.ip) for g in OUTSIDE_GROUPS for n in lab.in_group(g)})
    rules: list[list[str]] = []
    routes: list[list[str]] = []
    for address in outside:
        rules.append(["add", "pref", str(EXEMPT_PREF), "from", address, "lookup", "main"])
        rules.append(["add", "pref", str(EXEMPT_PREF), "to", address, "lookup", "main"])
    drops: list[str] = []
    bridges = {site.name: _bridge(site) for site, _ in joined}
    group = ", ".join(outside)
    skip = f"ip saddr != {{ {group} }} ip daddr != {{ {group} }} " if outside else ""
    for index, (site, gw) in enumerate(joined):
        table = str(TABLE_BASE + 1 + index)
        for other, _ in joined:
            if other is site:
                continue
            pair = ["from", str(site.subnet), "to", str(other.subnet)]
            rules.append(["add", "pref", str(SITE_PREF), *pair, "lookup", table])
            routes.append(
                ["replace", str(other.subnet), "via", str(gw.ip), "dev", bridges[site.name], "table", table]
            )
            # Into the other site's network only from within it (bridged from its gateway, which decapsulated
            # it; the host's bridges pass through this hook too), never routed there by the host.
            into = quoted(bridges[other.name])
            flow = f"ip saddr {site.subnet} ip daddr {other.subnet} {skip}"
            drops.append(f"    {flow}oifname {into} iifname != {into} counter drop")
    lines = [f"table inet {NFT_TABLE} {{"]
    if drops:
        lines += [
            "  chain forward {",
            "    type filter hook forward priority -5; policy accept;",
            *drops,
            "  }",
            "  chain output {",
            "    type filter hook output priority -5; policy accept;",
            f"    oifname {{ {', '.join(map(quoted, bridges.values()))} }} icmp type redirect counter drop",
            "  }",
        ]
    lines.append("}")
    return rules, routes, "\n".join(lines) + "\n"


def _joined(lab: Lab) -> bool:
    return any(lab.gateway_of(s) for s in lab.sites)


def through_gateways(lab: Lab) -> None:
    """(Re)apply the policy routes and the fail-closed table; nothing when no site has a gateway (a lab
    without a WAN, such as the CLI tests' own, leaves the host's routing as it is)."""
    if not _joined(lab):
        return
    forget_gateways(lab)
    rules, routes, ruleset = gateway_plan(lab)
    for route in routes:
        run(["ip", "route", *route])
    for rule in rules:
        run(["ip", "rule", *rule])
    run(["nft", "-f", "-"], input_text=f"table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n" + ruleset)


def forget_gateways(lab: Lab | None = None) -> None:
    """Delete the policy routes, their tables and the nft table of a lab with gateways (``lab down``;
    before re-applying); ``None``: whatever a lab left (``lab down --all``). One lab with a WAN per host."""
    if lab is not None and not _joined(lab):
        return
    for pref in (EXEMPT_PREF, SITE_PREF):
        while (
            run(["ip", "rule", "del", "pref", str(pref)], check=False, capture=True, quiet=True).returncode
            == 0
        ):
            continue
    for index in range(1, 9):
        run(["ip", "route", "flush", "table", str(TABLE_BASE + index)], check=False, capture=True, quiet=True)
    run(["nft", "delete", "table", "inet", NFT_TABLE], check=False, capture=True, quiet=True)
