"""What the VPN controls (test_vpn.py) read and compare: strongSwan's SAs (``swanctl --list-sas --raw``), the
agreed proposals in strongSwan's names, routes (``ip -j``), XFRM policies and the forward firewall (nft JSON).

The agreed proposals are the connection's own (the stack's tunnel options, the role's ``vpn_tunnels``), in
AWS's names; the names below are what strongSwan reports for each. A name missing here is never agreed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# AWS's names (VpnTunnelOptionsSpecification) -> strongSwan's (vici) names of the negotiated algorithms.
ENCRYPTION = {"AES256-GCM-16": "AES_GCM_16-256", "AES256": "AES_CBC-256"}
AEAD = {"AES_GCM_16-256"}
INTEGRITY = {"SHA2-256": "HMAC_SHA2_256_128"}
PRF = {"SHA2-256": "PRF_HMAC_SHA2_256"}
DH_GROUPS = {14: "MODP_2048", 19: "ECP_256", 20: "ECP_384"}
# strongSwan's kernel-libipsec TUN device: the tunnels' way in and out when ESP runs in user space.
TUN_DEVICE = "ipsec0"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What the controls read from the inventory for each host (Ansible resolves it on the controller): the
# tunnels' agreed options (never their keys), each site's prefixes (the stack's onpremCidrs and vpcCidr) and
# the IPsec backend.
_FIELDS = (
    "tunnel",
    "phase1_encryption_algorithms",
    "phase1_integrity_algorithms",
    "phase1_dh_group_numbers",
    "phase2_encryption_algorithms",
    "phase2_integrity_algorithms",
    "phase2_dh_group_numbers",
)
INPUTS = (
    "{{ {"
    + ", ".join(f"'{f}': vpn_tunnels | default([]) | map(attribute='{f}') | list" for f in _FIELDS)
    + ", 'onprem': vpn_local_cidrs | default([]), 'cloud': vpn_remote_cidrs | default([]),"
    " 'kernel_libipsec': vpn_kernel_libipsec | default(false) | bool} }}"
)


@dataclass(frozen=True)
class Agreed:
    """One phase of one tunnel (1: IKE, 2: ESP), in strongSwan's names."""

    encryption: frozenset[str]
    integrity: frozenset[str]
    prf: frozenset[str]
    dh: frozenset[str]


def _names(table: dict[Any, str], values: Iterable[Any]) -> frozenset[str]:
    return frozenset(table[v] for v in values if v in table)


def tunnels(inputs: dict[str, Any]) -> dict[str, dict[int, Agreed]]:
    """{connection name (role vpn's ``tunnel<N>``): {phase: Agreed}} from a host's resolved INPUTS."""
    out = {}
    for i, number in enumerate(inputs["tunnel"]):
        out[f"tunnel{number}"] = {
            phase: Agreed(
                _names(ENCRYPTION, inputs[f"phase{phase}_encryption_algorithms"][i]),
                _names(INTEGRITY, inputs[f"phase{phase}_integrity_algorithms"][i]),
                _names(PRF, inputs[f"phase{phase}_integrity_algorithms"][i]),
                _names(DH_GROUPS, inputs[f"phase{phase}_dh_group_numbers"][i]),
            )
            for phase in (1, 2)
        }
    return out


def prefixes(inputs: dict[str, Any], site: str) -> list[Network]:
    """The prefixes of ``site`` (onprem: the stack's onpremCidrs; cloud: its vpcCidr)."""
    return [ipaddress.ip_network(str(c)) for c in inputs.get(site) or []]


def other_site(site: str) -> str:
    return {"onprem": "cloud", "cloud": "onprem"}.get(site, "")


# --- swanctl --list-sas --raw: `list-sa event {NAME {key=value key=[a b] child-sas {...}}}` per IKE SA

_TOKEN = re.compile(
    r"(?P<section>[^\s{}=\[\]]+) \{|(?P<end>\})"
    r"|(?P<key>[^\s{}=\[\]]+)=(?:\[(?P<list>[^\]]*)\]|(?P<value>[^\s{}]*))"
)


def ike_sas(raw: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(connection name, IKE SA) for each IKE SA; an SA's CHILD_SAs are its ``child-sas`` section."""
    for line in raw.splitlines():
        if not line.startswith("list-sa event {"):
            continue
        body = line[len("list-sa event {") :].rstrip()
        body = body[:-1] if body.endswith("}") else body
        stack: list[dict[str, Any]] = [{}]
        for m in _TOKEN.finditer(body):
            if m["section"]:
                stack[-1][m["section"]] = section = {}
                stack.append(section)
            elif m["end"]:
                if len(stack) > 1:
                    stack.pop()
            elif m["list"] is not None:
                stack[-1][m["key"]] = m["list"].split()
            else:
                stack[-1][m["key"]] = m["value"]
        yield from stack[0].items()


def _algorithm(sa: dict[str, Any]) -> str:
    return f"{sa.get('encr-alg', '?')}-{sa.get('encr-keysize', '?')}"


def off_proposal(sa: dict[str, Any], agreed: Agreed, child: bool) -> list[str]:
    """What an SA negotiated outside the agreed set ([] when all of it is agreed)."""
    wrong = []
    encryption = _algorithm(sa)
    if encryption not in agreed.encryption:
        wrong.append(f"encryption {encryption}")
    if encryption not in AEAD and sa.get("integ-alg") not in agreed.integrity:
        wrong.append(f"integrity {sa.get('integ-alg', 'none')}")
    if not child and sa.get("prf-alg") not in agreed.prf:
        wrong.append(f"PRF {sa.get('prf-alg', 'none')}")
    # a CHILD_SA made with IKE_AUTH carries no DH group (PFS applies from its first rekeying)
    if (not child or "dh-group" in sa) and sa.get("dh-group") not in agreed.dh:
        wrong.append(f"DH group {sa.get('dh-group', 'none')}")
    if child and sa.get("protocol") != "ESP":
        wrong.append(f"protocol {sa.get('protocol')}")
    return wrong


def check_tunnel(
    raw: str, name: str, agreed: dict[int, Agreed], local: list[Network], remote: list[Network]
) -> tuple[str, list[str]]:
    """(one line of what the tunnel's SAs are, problems): an IKE SA ESTABLISHED with a CHILD_SA INSTALLED
    between exactly the sites' prefixes, everything they negotiated agreed."""
    problems, seen, up = [], [], False
    for conn, ike in ike_sas(raw):
        if conn != name:
            continue
        children = list((ike.get("child-sas") or {}).values())
        seen.append(
            f"IKE {ike.get('state')} {_algorithm(ike)}/{ike.get('prf-alg')}/{ike.get('dh-group')}; "
            + ", ".join(
                f"CHILD {c.get('state')} {c.get('protocol')} {_algorithm(c)} "
                f"{c.get('local-ts')} <-> {c.get('remote-ts')}"
                for c in children
            )
        )
        if ike.get("state") != "ESTABLISHED":
            continue
        problems += [f"{name} IKE SA: {w} not agreed" for w in off_proposal(ike, agreed[1], child=False)]
        for child in children:
            if child.get("state") != "INSTALLED":
                continue
            problems += [
                f"{name} CHILD_SA: {w} not agreed" for w in off_proposal(child, agreed[2], child=True)
            ]
            ts = (
                [ipaddress.ip_network(t) for t in child.get("local-ts", [])],
                [ipaddress.ip_network(t) for t in child.get("remote-ts", [])],
            )
            if (sorted(map(str, ts[0])), sorted(map(str, ts[1]))) != (
                sorted(map(str, local)),
                sorted(map(str, remote)),
            ):
                problems.append(
                    f"{name} CHILD_SA carries {child.get('local-ts')} <-> {child.get('remote-ts')},"
                    f" not {sorted(map(str, local))} <-> {sorted(map(str, remote))}"
                )
            up = True
    if not up:
        problems.insert(0, f"{name}: no IKE SA ESTABLISHED with a CHILD_SA INSTALLED")
    return f"{name}: " + (" | ".join(seen) or "no SA"), problems


# --- routes -----------------------------------------------------------------------------------------------


def probe_address(prefix: Network) -> str:
    """An address inside the prefix to ask the routing table about (its first host)."""
    return str(next(iter(prefix.hosts()), prefix.network_address))


def _dst(route: dict[str, Any]) -> Network | None:
    dst = route.get("dst")
    if dst in (None, "default"):
        return None
    return ipaddress.ip_network(dst)


def unreachable_in_main(routes_json: str, prefix: Network) -> bool:
    """The main table (``ip -j route show table main``) holds ``unreachable PREFIX`` (fail closed)."""
    return any(r.get("type") == "unreachable" and _dst(r) == prefix for r in json.loads(routes_json))


def default_route(routes_json: str) -> dict[str, Any] | None:
    return next((r for r in json.loads(routes_json) if r.get("dst") == "default" and "gateway" in r), None)


def paths_into(routes_json: str, prefixes: list[Network]) -> list[dict[str, Any]]:
    """Routes of a table that lead into any of ``prefixes`` other than the default route (unreachable,
    blackhole and prohibit routes lead nowhere and are left out)."""
    return [
        r
        for r in json.loads(routes_json)
        if (dst := _dst(r)) is not None
        and r.get("type") not in ("unreachable", "blackhole", "prohibit")
        and any(dst.version == p.version and dst.overlaps(p) for p in prefixes)
    ]


def xfrm_out_destinations(policies: str) -> list[Network]:
    """Destination selectors of ``ip xfrm policy list dir out`` (kernel IPsec's out policies)."""
    return [
        ipaddress.ip_network(m.group(1)) for m in re.finditer(r"^src \S+ dst (\S+)", policies, re.MULTILINE)
    ]


# --- the forward firewall (nft -j list ruleset) -----------------------------------------------------------


def _networks(right: Any) -> list[Network]:
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    out = []
    for item in items:
        if isinstance(item, dict) and "prefix" in item:
            out.append(ipaddress.ip_network(f"{item['prefix']['addr']}/{item['prefix']['len']}"))
        elif isinstance(item, dict) and "range" in item:
            first, last = (ipaddress.ip_address(a) for a in item["range"])
            out.extend(ipaddress.summarize_address_range(first, last))
        elif isinstance(item, str):
            out.append(ipaddress.ip_network(item))
    return out


def _from_ipsec(match: dict[str, Any], tun_device: str | None) -> bool:
    left, right, op = match.get("left", {}), match.get("right"), match.get("op", "==")
    if not isinstance(left, dict) or op not in ("==", "in"):
        return False
    if left.get("meta", {}).get("key") == "ipsec" and right is True:  # meta ipsec exists
        return True
    if left.get("ipsec", {}).get("dir") == "in":  # ipsec in reqid / spi / ip saddr ...
        return True
    return bool(tun_device) and left.get("meta", {}).get("key") == "iifname" and right == tun_device


def forward_verdict(
    ruleset_json: str, others: list[Network], tun_device: str | None
) -> tuple[list[str], str]:
    """(problems, evidence): the forward hook accepts a packet from ``others`` only when IPsec decapsulated
    it (``meta ipsec exists``, an ``ipsec in`` match, or with user-space ESP its TUN device as input).
    Every forward base chain must accept a packet for it to pass: one chain with a drop policy and no other
    way in for the other site's prefixes is enough. Replies (``ct state established,related``) pass."""
    doc = json.loads(ruleset_json)["nftables"]
    chains = [o["chain"] for o in doc if "chain" in o and o["chain"].get("hook") == "forward"]
    rules = [o["rule"] for o in doc if "rule" in o]
    if not chains:
        return ["no forward chain: the host forwards whatever its routes allow"], ""
    verdicts, lines = {}, []
    for chain in chains:
        key = (chain["family"], chain["table"], chain["name"])
        holes = [] if chain.get("policy") == "drop" else [f"policy {chain.get('policy')}"]
        for rule in (r for r in rules if (r["family"], r["table"], r["chain"]) == key):
            exprs = rule.get("expr", [])
            if not any(v in e for e in exprs for v in ("accept", "jump", "goto")):
                continue
            matches = [e["match"] for e in exprs if "match" in e]
            if any(
                m.get("left", {}).get("ct", {}).get("key") == "state"
                and set(m["right"] if isinstance(m["right"], list) else [m["right"]])
                <= {"established", "related"}
                for m in matches
            ):
                continue
            if any(_from_ipsec(m, tun_device) for m in matches):
                continue
            sources = [
                n
                for m in matches
                if m.get("left", {}).get("payload", {}).get("field") == "saddr"
                and m.get("op", "==") in ("==", "in")
                for n in _networks(m["right"])
            ]
            if not sources or any(s.version == o.version and s.overlaps(o) for s in sources for o in others):
                holes.append(json.dumps(exprs)[:300])
        name = " ".join(key)
        verdicts[name] = holes
        lines.append(
            f"{name} (policy {chain.get('policy')}): "
            + ("; ".join(holes) if holes else "the other site only through IPsec")
        )
    if any(not holes for holes in verdicts.values()):
        return [], "\n".join(lines)
    return [f"{name}: {'; '.join(h)}" for name, h in verdicts.items()], "\n".join(lines)
