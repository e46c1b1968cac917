"""Faults the drills inject, each a plain command printed before it runs (``puente.shell.run``).

WAN cut: nftables tables the project owns, both named ``puente_wan``, on the host that routes between
the lab's sites:

- ``inet puente_wan`` drops forwarding between the isolated site's subnet and the other sites' subnets,
  and (``cut_clients``) the host's own traffic to the isolated site, so the drill's client — which
  stands on "the internet" — loses it too;
- ``bridge puente_wan`` handles ``exempt`` addresses: nodes inside the isolated subnet that stand for
  something OUTSIDE the site. The lab's failover DNS is one: it plays Route 53, a global service whose
  health checkers see the site from the internet. It stays reachable from the host and the other sites,
  and during the cut it loses its own site (frames across the site's bridge are dropped), exactly as the
  internet does. Without that, a DNS inside the site would keep seeing the site healthy.

Deleting the tables restores everything; nothing else on the host is touched.

Tunnel cut: ``bridge puente_wan_tunnel`` on the lab's WAN bridge (the internal network between the sites'
VPN gateways) drops every frame between a gateway's WAN address and the given tunnels' outside addresses —
IKE (UDP 500), ESP in UDP (4500), plain ESP — as a failed WAN path or a dead endpoint would. strongSwan
sees the peer go silent and takes the tunnel down by dead peer detection; the other tunnel, if spared,
takes over. A table of its own, so it stacks with a WAN cut (``site-failover --fault tunnel`` uses both).

Node faults: ``podman stop`` (clean shutdown) / ``podman kill`` (crash) / ``podman start``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from puente.shell import run

TABLE_FAMILY = "inet"
TABLE_NAME = "puente_wan"
TUNNEL_TABLE = "puente_wan_tunnel"
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
# Every nft table a drill may leave behind: what `puente drill cleanup` deletes.
TABLES = ((TABLE_FAMILY, TABLE_NAME), ("bridge", TABLE_NAME), ("bridge", TUNNEL_TABLE))


class _NftFault:
    """A fault made of the project's own nft tables (``puente_wan``); restore = delete them."""

    netns: str | None
    tables: ClassVar[tuple[tuple[str, str], ...]] = ((TABLE_FAMILY, TABLE_NAME), ("bridge", TABLE_NAME))
    """(family, name) of the tables this fault makes (and deletes)."""

    def ruleset(self) -> str:
        raise NotImplementedError

    def _nft(self, *args: str, input_text: str | None = None, check: bool = True, quiet: bool = False):
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return run([*prefix, "nft", *args], input_text=input_text, check=check, capture=True, quiet=quiet)

    def _present(self) -> list[tuple[str, str]]:
        return [
            (family, name)
            for family, name in self.tables
            if self._nft("list", "table", family, name, check=False, quiet=True).returncode == 0
        ]

    def active(self) -> bool:
        return bool(self._present())

    def cut(self) -> None:
        present = self._present()
        if present:
            raise RuntimeError(
                f"table {' and '.join(f'{f} {n}' for f, n in present)} already exists (a previous drill did "
                "not restore?): check it with `nft list tables`, then `puente drill cleanup`"
            )
        self._nft("-f", "-", input_text=self.ruleset())

    def restore(self) -> None:
        for family, name in self._present():
            self._nft("delete", "table", family, name)


@dataclass(frozen=True)
class WanCut(_NftFault):
    isolate: str
    """CIDR of the site being cut off, e.g. 10.89.1.0/24."""
    peers: Sequence[str]
    """CIDRs of the other sites."""
    exempt: Sequence[str] = field(default_factory=tuple)
    """Addresses inside ``isolate`` that stand outside the site (the lab's DNS): reachable from the host
    and the other sites, cut from their own site's nodes."""
    cut_clients: bool = True
    netns: str | None = None
    """Run nft in this network namespace (tests); None = the host."""

    def __post_init__(self) -> None:
        # refuse anything that is not an address before building a ruleset out of it
        net = ipaddress.IPv4Network(self.isolate)
        for p in self.peers:
            if ipaddress.IPv4Network(p).overlaps(net):
                raise ValueError(f"peer subnet {p} overlaps the isolated subnet {net}")
        for e in self.exempt:
            if ipaddress.IPv4Address(e) not in net:
                raise ValueError(f"exempt address {e} is not inside {net}")
        if not self.peers and not self.cut_clients:
            raise ValueError("a WAN cut needs at least one peer subnet (or the clients to cut)")

    def ruleset(self) -> str:
        """The table, as an nft script (``nft -f -``): applied atomically."""
        peers = ", ".join(str(ipaddress.IPv4Network(p)) for p in self.peers)
        inside = str(ipaddress.IPv4Network(self.isolate))
        skip = ""
        if self.exempt:
            skip = f"ip saddr != {{ {', '.join(self.exempt)} }} "
        skip_d = skip.replace("saddr", "daddr")
        lines = [f"table {TABLE_FAMILY} {TABLE_NAME} {{"]
        if self.peers:
            lines += [
                "  chain forward {",
                # priority before the filter chains podman/iptables-nft add: a drop here is final anyway
                "    type filter hook forward priority -10; policy accept;",
                f"    ip saddr {inside} {skip}ip daddr {{ {peers} }} counter drop",
                f"    ip saddr {{ {peers} }} ip daddr {inside} {skip_d}counter drop",
                "  }",
            ]
        if self.cut_clients:
            lines += [
                "  chain output {",
                "    type filter hook output priority -10; policy accept;",
                f"    ip daddr {inside} {skip_d}counter drop",
                "  }",
            ]
        lines.append("}")
        if self.exempt:
            outside = ", ".join(self.exempt)
            lines += [
                f"table bridge {TABLE_NAME} {{",
                "  chain forward {",
                "    type filter hook forward priority -10; policy accept;",
                f"    ip saddr {{ {outside} }} ip daddr {inside} counter drop",
                f"    ip saddr {inside} ip daddr {{ {outside} }} counter drop",
                "  }",
                "}",
            ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NodePartition(_NftFault):
    """Isolates a set of nodes (e.g. a site's database members) from every other node, in their site and
    beyond, while they still talk among themselves and the host still reaches them (the drill's probes).
    Frames across the site's bridge are dropped by ``bridge puente_wan``, routed packets by ``inet``."""

    addresses: Sequence[str]
    netns: str | None = None

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("a partition needs at least one address")
        for a in self.addresses:
            ipaddress.IPv4Address(a)

    def ruleset(self) -> str:
        group = ", ".join(self.addresses)
        return (
            f"table {TABLE_FAMILY} {TABLE_NAME} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority -10; policy accept;\n"
            f"    ip saddr {{ {group} }} counter drop\n"
            f"    ip daddr {{ {group} }} counter drop\n"
            "  }\n"
            "}\n"
            f"table bridge {TABLE_NAME} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority -10; policy accept;\n"
            f"    ip saddr {{ {group} }} ip daddr != {{ {group} }} counter drop\n"
            f"    ip daddr {{ {group} }} ip saddr != {{ {group} }} counter drop\n"
            "  }\n"
            "}\n"
        )


@dataclass(frozen=True)
class TunnelCut(_NftFault):
    """Takes tunnels down as a WAN path or endpoint failure does: on the WAN's bridge, every frame between
    the ``gateway``'s WAN address and the tunnels' ``outside`` addresses is dropped (both ways; IKE, ESP in
    UDP and ESP alike). Other addresses on the WAN (a tunnel spared) are untouched."""

    bridge: str
    """The WAN's bridge on the host (``podman network inspect`` -> network_interface)."""
    gateway: str
    """The site's VPN gateway, its WAN address (the customer gateway)."""
    outside: Sequence[str]
    """The outside addresses of the tunnels to take down (AWS's ends)."""
    netns: str | None = None
    tables: ClassVar[tuple[tuple[str, str], ...]] = (("bridge", TUNNEL_TABLE),)

    def __post_init__(self) -> None:
        if not _IFNAME.match(self.bridge):
            raise ValueError(f"not an interface name: {self.bridge!r}")
        gateway = ipaddress.IPv4Address(self.gateway)
        if not self.outside:
            raise ValueError("a tunnel cut needs at least one outside address")
        for a in self.outside:
            if ipaddress.IPv4Address(a) == gateway:
                raise ValueError(f"outside address {a} is the gateway itself")

    def ports(self) -> list[str]:
        """The bridge's ports now (the gateways' veths): this kernel's nft has no ``meta ibrname``, so
        the rules name the ports of the WAN's bridge instead."""
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        out = run([*prefix, "ip", "-o", "link", "show", "master", self.bridge], capture=True, quiet=True)
        # "7: veth0@if2: <BROADCAST,...> mtu 1500 master wan0 ..." -> veth0
        names = [
            line.split(":")[1].strip().split("@")[0]
            for line in (out.stdout or "").splitlines()
            if ":" in line
        ]
        if not names:
            raise RuntimeError(f"bridge {self.bridge} has no ports: is the lab's WAN up?")
        return names

    def ruleset(self) -> str:
        ends = ", ".join(str(ipaddress.IPv4Address(a)) for a in self.outside)
        gateway = str(ipaddress.IPv4Address(self.gateway))
        ports = ", ".join(f'"{p}"' for p in self.ports() if _IFNAME.match(p))
        on_wan = f"iifname {{ {ports} }}"
        return (
            f"table bridge {TUNNEL_TABLE} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority -10; policy accept;\n"
            f"    {on_wan} ip saddr {gateway} ip daddr {{ {ends} }} counter drop\n"
            f"    {on_wan} ip saddr {{ {ends} }} ip daddr {gateway} counter drop\n"
            "  }\n"
            "}\n"
        )


def restore_all(netns: str | None = None) -> list[str]:
    """Delete every table a drill makes (``TABLES``) that an interrupted drill left; returns
    ``family name`` of each one removed."""
    probe = NodePartition(["127.0.0.1"], netns=netns)
    removed = []
    for family, name in TABLES:
        if probe._nft("list", "table", family, name, check=False, quiet=True).returncode == 0:
            probe._nft("delete", "table", family, name)
            removed.append(f"{family} {name}")
    return removed


def stop_node(name: str, *, crash: bool) -> None:
    """``podman kill`` is a crash (Patroni's leader key must expire); ``podman stop`` a clean shutdown."""
    from puente.lab import podman  # the lab's containers.conf (runc, cgroupfs): podman fails without it

    if crash:
        podman.podman("kill", name)
    else:
        podman.podman("stop", "--time", "10", name)


def start_node(name: str) -> None:
    from puente.lab import podman

    # not captured: a pipe on `podman start` can keep the caller waiting until the node stops
    podman.podman("start", name)
