"""Reads and checks the lab inventory (``inventories/lab/hosts.yml`` + the generated ``scale.yml``).

A site is a group (the lab's are under ``lab``) that declares ``lab_network`` and ``lab_subnet`` in its vars;
each of its hosts is a node with a fixed ``ansible_host`` inside that subnet. The WAN between the sites' VPN
gateways is declared once (``lab_wan_network`` and ``lab_wan_subnet``, in any group's vars); a node with a
``lab_wan_address`` is a gateway: it gets a second interface on it and forwards. Everything wrong is reported
at once, before any node is touched.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from puente.lab import paths

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Host devices a node may be given (`lab_devices`): the TUN device strongSwan's kernel-libipsec needs on the
# VPN nodes (role vpn). Nothing else: a node never gets the host's devices wholesale (no --privileged).
ALLOWED_DEVICES = ("/dev/net/tun",)


class InventoryError(ValueError):
    """The lab inventory cannot be used; the message lists every problem found."""


@dataclass(frozen=True)
class Site:
    name: str
    network: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the site's bridge (first address of the subnet)."""
        return next(self.subnet.hosts())


@dataclass(frozen=True)
class Node:
    name: str
    site: Site
    ip: ipaddress.IPv4Address
    groups: tuple[str, ...] = ()
    mac: str = ""
    devices: tuple[str, ...] = ()
    wan_ip: ipaddress.IPv4Address | None = None
    """The node's address on the WAN between the sites (a VPN gateway's outside address), if it has one."""

    @property
    def mac_address(self) -> str:
        """A fixed, locally administered MAC derived from the IP unless set (stale ARP stalls SSH)."""
        return self.mac or "02:00:" + ":".join(f"{b:02x}" for b in self.ip.packed)


@dataclass
class Lab:
    sites: dict[str, Site] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    wan: Site | None = None
    """The WAN between the sites' VPN gateways: an internal podman network (no route to the host)."""

    def gateway_of(self, site: str) -> Node | None:
        """The site's VPN gateway: its node on the WAN (the sites' traffic to each other goes through it)."""
        return next((n for n in self.nodes.values() if n.site.name == site and n.wan_ip), None)

    def in_group(self, group: str) -> list[Node]:
        return [self.nodes[n] for n in self.groups.get(group, [])]

    def for_sites(self, names: Iterable[str] | None) -> list[Node]:
        wanted = set(names) if names else None
        return [n for n in self.nodes.values() if wanted is None or n.site.name in wanted]


def _load(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        problems.append(f"{path}: missing")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not valid YAML: {exc}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        problems.append(f"{path}: top level must be a mapping with an `all:` group")
        return {}
    return data["all"]


def _walk(
    name: str, group: Mapping[str, Any], where: str, problems: list[str], out: dict[str, dict[str, Any]]
) -> None:
    """Flatten nested groups: ``out[group] = {"hosts": {host: vars}, "vars": {}, "children": []}``."""
    if group is None:
        group = {}
    if not isinstance(group, dict):
        problems.append(f"{where}: group `{name}` must be a mapping, not {type(group).__name__}")
        return
    unknown = set(group) - {"hosts", "vars", "children"}
    if unknown:
        problems.append(f"{where}: group `{name}` has unknown keys {sorted(unknown)} (hosts, vars, children)")
    entry = out.setdefault(name, {"hosts": {}, "vars": {}, "children": []})
    hosts = group.get("hosts") or {}
    if not isinstance(hosts, dict):
        problems.append(f"{where}: `{name}.hosts` must be a mapping of host names")
        hosts = {}
    for host, hvars in hosts.items():
        if hvars is not None and not isinstance(hvars, dict):
            problems.append(f"{where}: host `{host}` vars must be a mapping")
            hvars = {}
        entry["hosts"].setdefault(str(host), {}).update(hvars or {})
    gvars = group.get("vars") or {}
    if not isinstance(gvars, dict):
        problems.append(f"{where}: `{name}.vars` must be a mapping")
        gvars = {}
    entry["vars"].update(gvars)
    children = group.get("children") or {}
    if not isinstance(children, dict):
        problems.append(f"{where}: `{name}.children` must be a mapping of groups")
        children = {}
    for child, body in children.items():
        if str(child) not in entry["children"]:
            entry["children"].append(str(child))
        _walk(str(child), body, where, problems, out)


def _members(group: str, flat: dict[str, dict[str, Any]], seen: frozenset[str] = frozenset()) -> set[str]:
    if group in seen or group not in flat:
        return set()
    hosts = set(flat[group]["hosts"])
    for child in flat[group]["children"]:
        hosts |= _members(child, flat, seen | {group})
    return hosts


def load(files: Iterable[Path] | None = None) -> Lab:
    """Parse and validate; raise :class:`InventoryError` listing every problem."""
    if files is None:
        files = [paths.HOSTS_FILE] + ([paths.SCALE_FILE] if paths.SCALE_FILE.exists() else [])
    problems: list[str] = []
    flat: dict[str, dict[str, Any]] = {}
    for path in files:
        _walk("all", _load(path, problems), str(path), problems, flat)
    if problems:
        raise InventoryError("malformed lab inventory:\n  - " + "\n  - ".join(problems))

    lab = Lab()
    for gname, g in flat.items():
        if "lab_wan_network" in g["vars"] or "lab_wan_subnet" in g["vars"]:
            lab.wan = _wan(gname, g["vars"], problems) or lab.wan
        if gname == "all" or ("lab_network" not in g["vars"] and "lab_subnet" not in g["vars"]):
            continue
        network, subnet = g["vars"].get("lab_network"), g["vars"].get("lab_subnet")
        if not isinstance(network, str) or not _NAME.match(network):
            problems.append(
                f"site `{gname}`: lab_network must be a name like puente-{gname}, got {network!r}"
            )
            continue
        try:
            net = ipaddress.IPv4Network(str(subnet))
        except ValueError:
            problems.append(
                f"site `{gname}`: lab_subnet must be an IPv4 CIDR like 10.89.1.0/24, got {subnet!r}"
            )
            continue
        lab.sites[gname] = Site(gname, network, net)
    if not lab.sites:
        problems.append("no site group: a site is a group whose vars declare lab_network and lab_subnet")

    for a in lab.sites.values():
        for b in lab.sites.values():
            if a.name < b.name and a.subnet.overlaps(b.subnet):
                problems.append(f"sites `{a.name}` and `{b.name}` have overlapping subnets")
        if lab.wan and a.subnet.overlaps(lab.wan.subnet):
            problems.append(f"site `{a.name}` overlaps the WAN's {lab.wan.subnet}")

    all_hosts = _members("all", flat)
    host_vars: dict[str, dict[str, Any]] = {}
    for g in flat.values():
        for host, hv in g["hosts"].items():
            host_vars.setdefault(host, {}).update(hv)
    groups_of: dict[str, list[str]] = {h: [] for h in all_hosts}
    for gname in flat:
        if gname == "all":
            continue
        members = sorted(_members(gname, flat))
        lab.groups[gname] = members
        for h in members:
            groups_of[h].append(gname)

    seen_ips: dict[ipaddress.IPv4Address, str] = {}
    for host in sorted(all_hosts):
        if not _NAME.match(host):
            problems.append(
                f"host `{host}`: a node name must be a DNS label (a-z, 0-9, -), it is its hostname"
            )
            continue
        sites = [s for s in groups_of[host] if s in lab.sites]
        if len(sites) != 1:
            problems.append(f"host `{host}`: must belong to exactly one site group, found {sites or 'none'}")
            continue
        site = lab.sites[sites[0]]
        raw_ip = host_vars[host].get("ansible_host")
        try:
            ip = ipaddress.IPv4Address(str(raw_ip))
        except ValueError:
            problems.append(f"host `{host}`: ansible_host must be a fixed IPv4 address, got {raw_ip!r}")
            continue
        if ip not in site.subnet or ip in (
            site.subnet.network_address,
            site.gateway,
            site.subnet.broadcast_address,
        ):
            problems.append(
                f"host `{host}`: {ip} is not a usable node address of {site.name}'s {site.subnet}"
            )
            continue
        if ip in seen_ips:
            problems.append(f"host `{host}`: {ip} is already used by `{seen_ips[ip]}`")
            continue
        seen_ips[ip] = host
        mac = str(host_vars[host].get("lab_mac", ""))
        if mac and not re.match(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$", mac):
            problems.append(f"host `{host}`: lab_mac must look like 02:00:0a:59:01:0a, got {mac!r}")
            continue
        devices = host_vars[host].get("lab_devices") or []
        if not isinstance(devices, list) or any(d not in ALLOWED_DEVICES for d in devices):
            problems.append(
                f"host `{host}`: lab_devices must be a list of {list(ALLOWED_DEVICES)}, got {devices!r}"
            )
            continue
        wan_ip = _wan_address(host, host_vars[host].get("lab_wan_address"), lab.wan, seen_ips, problems)
        if wan_ip is False:
            continue
        lab.nodes[host] = Node(
            host, site, ip, tuple(sorted(groups_of[host])), mac, tuple(devices), wan_ip or None
        )
    if problems:
        raise InventoryError("malformed lab inventory:\n  - " + "\n  - ".join(problems))
    # Inventory order of sites (the primary first), then addresses: what status and URLs list first.
    rank = {name: i for i, name in enumerate(lab.sites)}

    def order(name: str) -> tuple[int, int]:
        node = lab.nodes[name]
        return rank[node.site.name], int(node.ip)

    lab.nodes = {name: lab.nodes[name] for name in sorted(lab.nodes, key=order)}
    lab.groups = {
        g: sorted((m for m in members if m in lab.nodes), key=order) for g, members in lab.groups.items()
    }
    return lab


def _wan(group: str, gvars: Mapping[str, Any], problems: list[str]) -> Site | None:
    network, subnet = gvars.get("lab_wan_network"), gvars.get("lab_wan_subnet")
    if not isinstance(network, str) or not _NAME.match(network):
        problems.append(f"group `{group}`: lab_wan_network must be a name like puente-wan, got {network!r}")
        return None
    try:
        return Site("wan", network, ipaddress.IPv4Network(str(subnet)))
    except ValueError:
        problems.append(f"group `{group}`: lab_wan_subnet must be an IPv4 CIDR like 10.89.0.0/24: {subnet!r}")
        return None


def _wan_address(
    host: str,
    raw: Any,
    wan: Site | None,
    seen: dict[ipaddress.IPv4Address, str],
    problems: list[str],
) -> ipaddress.IPv4Address | Literal[False] | None:
    """The node's WAN address (None: it has none; False: a problem was reported)."""
    if raw is None:
        return None
    if wan is None:
        problems.append(
            f"host `{host}`: lab_wan_address, but no group declares lab_wan_network/lab_wan_subnet"
        )
        return False
    try:
        ip = ipaddress.IPv4Address(str(raw))
    except ValueError:
        problems.append(f"host `{host}`: lab_wan_address must be an IPv4 address, got {raw!r}")
        return False
    if ip not in wan.subnet or ip in (wan.subnet.network_address, wan.subnet.broadcast_address):
        problems.append(f"host `{host}`: lab_wan_address {ip} is no usable address of the WAN's {wan.subnet}")
        return False
    if ip in seen:
        problems.append(f"host `{host}`: lab_wan_address {ip} is already used by `{seen[ip]}`")
        return False
    seen[ip] = host
    return ip


def shared_vars() -> dict[str, Any]:
    """Untemplated site-wide values as the lab's playbooks see them: Puente's shared defaults
    (roles/puente) under the lab's overrides (``puente_dns_zone``, ...)."""
    out: dict[str, Any] = {}
    for path in (paths.LAYOUT_DEFAULTS, paths.OVERRIDES_FILE):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (FileNotFoundError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            out.update(data)
    return out
