"""What the drill needs to know about the lab, read from the inventory (``inventories/lab/hosts.yml``)
and the shared group_vars — never hard-coded addresses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from puente.lab import inventory, paths

PRIMARY_SITE = "onprem"
SECONDARY_SITE = "cloud"
WITNESS_SITE = "witness"
CA_FILE = paths.CA_DIR / "ca.crt"
PATRONI_PORT = 8008
# Patroni's REST API is HTTPS; the CA that signed its certificate, on every database node (roles/postgresql).
PATRONI_CA = "/etc/patroni/ssl/ca.crt"


class TopologyError(RuntimeError):
    """The inventory does not describe a lab the drill can run against."""


@dataclass(frozen=True)
class DbMember:
    name: str
    site: str
    ip: str


@dataclass(frozen=True)
class VpnGateway:
    """A site's VPN gateway (role vpn): the node whose WAN address the site's tunnels leave from."""

    name: str
    site: str
    wan_ip: str


@dataclass(frozen=True)
class Tunnel:
    """One tunnel of the site-to-site VPN (the inventory's ``vpn_tunnels``, in order: the first preferred)."""

    name: str
    """strongSwan's connection name (role vpn: ``tunnel<N>``)."""
    outside: str
    """AWS's end of the tunnel (its outside address on the WAN)."""


@dataclass
class Topology:
    sites: dict[str, str]
    """site name -> subnet (CIDR)."""
    nodes: dict[str, str]
    """node name -> site name."""
    node_ips: dict[str, str]
    api_name: str
    dns_servers: list[str]
    edges: dict[str, str]
    """gateway address -> site name (tells which site answered when no header says so)."""
    db_members: list[DbMember]
    api_nodes: dict[str, list[str]]
    """site -> API node names."""
    witness_nodes: list[str] = field(default_factory=list)
    db_name: str = "puente"
    sqs_nodes: list[str] = field(default_factory=list)
    monitoring_nodes: list[str] = field(default_factory=list)
    """Prometheus + Alertmanager, one per site (role monitoring), each with the lab's alert receiver."""
    wan_network: str | None = None
    """The podman network between the sites' VPN gateways (the lab's WAN), if the lab has one."""
    vpn_gateways: dict[str, VpnGateway] = field(default_factory=dict)
    """site -> its VPN gateway (sites joined by the tunnels)."""
    tunnels: list[Tunnel] = field(default_factory=list)

    def nodes_of(self, site: str) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if s == site)

    def has_site(self, site: str) -> bool:
        return site in self.sites

    def through_tunnels(self, site: str) -> list[str]:
        """The other sites ``site`` reaches through the VPN's tunnels (none when it has no gateway)."""
        if site not in self.vpn_gateways:
            return []
        return sorted(s for s in self.vpn_gateways if s != site)


def load(files: list[Path] | None = None, api_name: str | None = None) -> Topology:
    try:
        lab = inventory.load(files)
    except inventory.InventoryError as exc:
        raise TopologyError(str(exc)) from exc
    shared = inventory.shared_vars()
    zone = str(shared.get("puente_dns_zone") or "puente.lab")
    gateways = {n.name for n in lab.in_group("gateways")}
    return Topology(
        sites={s.name: str(s.subnet) for s in lab.sites.values()},
        nodes={n.name: n.site.name for n in lab.nodes.values()},
        node_ips={n.name: str(n.ip) for n in lab.nodes.values()},
        api_name=api_name or f"api.{zone}",
        dns_servers=[str(n.ip) for n in lab.in_group("dns")],
        edges={str(n.ip): n.site.name for n in lab.nodes.values() if n.name in gateways},
        db_members=[DbMember(n.name, n.site.name, str(n.ip)) for n in lab.in_group("postgresql")],
        api_nodes={
            s: sorted(n.name for n in lab.in_group("api_nodes") if n.site.name == s) for s in lab.sites
        },
        witness_nodes=[n.name for n in lab.nodes.values() if n.site.name == WITNESS_SITE],
        db_name=str(shared.get("puente_db_name") or "puente"),
        sqs_nodes=[n.name for n in lab.in_group("sqs")],
        monitoring_nodes=[n.name for n in lab.in_group("monitoring")],
        wan_network=lab.wan.network if lab.wan else None,
        vpn_gateways={
            s: VpnGateway(gw.name, s, str(gw.wan_ip))
            for s in lab.sites
            if (gw := lab.gateway_of(s)) is not None and gw.wan_ip is not None
        },
        tunnels=_tunnels(shared.get("vpn_tunnels")),
    )


def _tunnels(raw: object) -> list[Tunnel]:
    """The lab's ``vpn_tunnels`` (the stack's output shape): the name and outside address of each."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise TopologyError(f"vpn_tunnels must be a list of tunnels, got {type(raw).__name__}")
    out = []
    for t in raw:
        try:
            out.append(
                Tunnel(f"tunnel{int(t['tunnel'])}", str(ipaddress.IPv4Address(str(t["outside_address"]))))
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise TopologyError(
                f"vpn_tunnels: an entry without a tunnel number and an outside address: {t!r}"
            ) from exc
    return out
