"""The link between the sites (role vpn, issue 14): each site reaches the other only through the VPN tunnels.

On each VPN gateway (group vpn, the customer gateway; aws_vpn, the lab's stand-in for AWS's end): every
tunnel's SAs are up with the agreed proposals, the other site's prefixes are unreachable outside the tunnels
and reach a tunnel while one is up, and the forward firewall lets the other site in only through IPsec. On
the other nodes of both sites: the other site is reached through the site's router (the default route), no
route of their own goes around it (on the gateways: their main table leads nowhere there).

What is agreed and which prefixes are whose come from the inventory the roles were applied with (the stack's
tunnel options and CIDRs, resolved by Ansible on the controller): nothing here names an address.
"""

from __future__ import annotations

import functools
import json

import pytest
from audit_vpn import (
    INPUTS,
    TUN_DEVICE,
    check_tunnel,
    default_route,
    forward_verdict,
    other_site,
    paths_into,
    prefixes,
    probe_address,
    tunnels,
    unreachable_in_main,
    xfrm_out_destinations,
)

from puente.audit import control
from puente.audit.inventory import resolve

GATEWAY_GROUPS = ("vpn", "aws_vpn")


@functools.cache
def vpn_inputs(inventory_path: str) -> dict[str, dict]:
    """Each host's agreed tunnel options, site prefixes and IPsec backend (audit_vpn.INPUTS)."""
    return resolve(inventory_path, INPUTS, "the VPN's inputs")


def _context(host, audit_inventory, evidence) -> tuple[dict, str, list, list]:
    """(inputs, site, the site's prefixes, the other site's), recorded; skips where no VPN joins the sites."""
    inputs = vpn_inputs(audit_inventory.path)[host.name]
    site = audit_inventory.site_of(host.name)
    own, others = prefixes(inputs, site), prefixes(inputs, other_site(site))
    if not inputs["tunnel"] or not own or not others:
        pytest.skip(f"no site-to-site VPN for site {site!r} in this inventory (vpn_tunnels, vpn_*_cidrs)")
    evidence.record(
        "from the inventory",
        f"site {site}: {', '.join(map(str, own))}; the other site: {', '.join(map(str, others))}; "
        f"tunnels {', '.join(f'tunnel{t}' for t in inputs['tunnel'])}; "
        f"{'user-space ESP (' + TUN_DEVICE + ')' if inputs['kernel_libipsec'] else 'kernel IPsec'}",
    )
    return inputs, site, own, others


@control(
    id="PUENTE-VPN-01",
    title="A VPN gateway carries the other site's traffic only through the tunnels",
    impact=0.9,
    rationale="""Replication, etcd, the Patroni checks and the API's traffic cross between the sites. Outside
    the tunnels they would travel in clear over the WAN. Every tunnel must be up with the proposals agreed
    with the other end (AES-256-GCM or AES-256 with SHA-256, DH 14/19/20); with no tunnel up the other site
    must be unreachable rather than routed in clear; and the gateway must forward the other site's packets
    only when IPsec decapsulated them.""",
    refs={"nist": ["SC-8", "SC-8(1)", "SC-7", "SC-7(5)", "AC-4", "SC-13"]},
    groups=list(GATEWAY_GROUPS),
    remediation="ansible-playbook playbooks/vpn.yml (role vpn; role common for the forward firewall)",
)
@pytest.mark.parametrize("aspect", ["tunnels-agreed", "fail-closed", "into-the-tunnel", "forward-firewall"])
def test_gateway_only_through_the_tunnels(host, evidence, audit_inventory, aspect: str):
    inputs, _site, own, others = _context(host, audit_inventory, evidence)
    if aspect == "tunnels-agreed":
        raw = host.snapshot("swanctl --list-sas --raw")
        problems = []
        for name, agreed in tunnels(inputs).items():
            line, found = check_tunnel(raw, name, agreed, own, others)
            evidence.record(f"{name} as negotiated", line)
            problems += found
        assert not problems, "; ".join(problems)
    elif aspect == "fail-closed":
        main = host.snapshot("ip -j route show table main")
        missing = [str(p) for p in others if not unreachable_in_main(main, p)]
        assert not missing, (
            f"no `unreachable` route for {', '.join(missing)} in the main table: with no tunnel up, "
            "that traffic would leave in clear by the default route"
        )
    elif aspect == "into-the-tunnel":
        problems = []
        if inputs["kernel_libipsec"]:
            for prefix in others:
                route = json.loads(host.check_output("ip -j route get %s", probe_address(prefix)))[0]
                if route.get("dev") != TUN_DEVICE:
                    problems.append(f"{prefix}: routed via {route.get('dev')}, not the tunnels' {TUN_DEVICE}")
        else:
            policies = xfrm_out_destinations(host.check_output("ip xfrm policy list dir out"))
            problems = [
                f"{p}: no IPsec out policy"
                for p in others
                if not any(d.version == p.version and p.subnet_of(d) for d in policies)
            ]
        assert not problems, "; ".join(problems)
    else:
        verdict, lines = forward_verdict(
            host.snapshot("nft -j list ruleset"), others, TUN_DEVICE if inputs["kernel_libipsec"] else None
        )
        evidence.record("forward chains", lines)
        assert not verdict, "the other site's prefixes are forwarded without IPsec: " + "; ".join(verdict)


@control(
    id="PUENTE-VPN-02",
    title="Nodes reach the other site only through their site's router",
    impact=0.7,
    rationale="""A node's own route to the other site's prefixes (a second interface, a static route) would
    bypass the site's VPN gateway and its tunnels. The other site must be reached through the node's default
    gateway, the site's router, which sends it to the VPN gateway.""",
    refs={"nist": ["SC-7", "AC-4", "SC-8"]},
    groups=["onprem", "cloud"],
    remediation="Remove the route (or interface) that leads to the other site outside the default gateway.",
)
def test_node_reaches_the_other_site_through_its_router(host, evidence, audit_inventory):
    _inputs, _site, _own, others = _context(host, audit_inventory, evidence)
    main = host.snapshot("ip -j route show table main")
    if set(audit_inventory.groups_of[host.name]) & set(GATEWAY_GROUPS):
        # the site's router for the other site: its main table leads nowhere there (the tunnels' routes are
        # strongSwan's own table; PUENTE-VPN-01 checks them)
        around = paths_into(main, others)
        assert not around, f"the VPN gateway's main table routes the other site outside the tunnels: {around}"
        return
    default = default_route(main)
    assert default, "no default route: the node has no site router"
    around = paths_into(main, others)
    assert not around, f"routes to the other site besides the default gateway: {around}"
    problems = []
    for prefix in others:
        route = json.loads(host.check_output("ip -j route get %s", probe_address(prefix)))[0]
        if (route.get("gateway"), route.get("dev")) != (default["gateway"], default["dev"]):
            problems.append(f"{prefix}: via {route.get('gateway', 'no gateway')} dev {route.get('dev')}")
    assert not problems, (
        f"the other site is not reached through the default gateway {default['gateway']} "
        f"dev {default['dev']}: {'; '.join(problems)}"
    )
