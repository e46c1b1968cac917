"""Networks and nodes: make podman match the inventory, whatever a previous run left behind.

Re-runs are cheap: a network with the right subnet and a node whose spec label matches are reused
(a stopped one is started); anything else carrying the lab's label is recreated or removed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from puente.lab import paths, podman
from puente.lab.inventory import Lab, Node, Site
from puente.shell import CommandError, run

SSH_TIMEOUT_S = 180.0


def _links_in(subnet: ipaddress.IPv4Network) -> list[str]:
    """Host interfaces holding an address of ``subnet``."""
    out = run(["ip", "-j", "addr", "show"], capture=True, quiet=True).stdout or "[]"
    return [
        link["ifname"]
        for link in json.loads(out)
        for addr in link.get("addr_info", [])
        if addr.get("family") == "inet" and ipaddress.ip_address(addr["local"]) in subnet
    ]


def remove_stale_bridges(subnet: ipaddress.IPv4Network) -> None:
    """Delete CNI bridges that hold ``subnet`` but belong to no podman network any more.

    With the CNI backend ``podman network rm`` leaves the bridge behind, and podman then refuses to
    create a network on that subnet ("subnet ... is already used on the host")."""
    names = podman.podman("network", "ls", "--format", "{{.Name}}", capture=True, quiet=True).split()
    in_use = {n.get("network_interface") for n in podman.inspect("network", names)}
    for link in _links_in(subnet):
        if link.startswith("cni-podman") and link not in in_use:
            run(["ip", "link", "delete", link])


def ensure_network(site: Site, *, internal: bool = False) -> None:
    """The site's podman network (the host is its gateway), or with ``internal`` the WAN between the sites'
    VPN gateways: no address of the host on it, no route out of it, nothing masqueraded."""
    found = podman.inspect("network", [site.network])
    if found:
        subnets = [s.get("subnet") for s in found[0].get("subnets") or []]
        same = subnets == [str(site.subnet)] and bool(found[0].get("internal")) == internal
        if same and paths.LABEL in (found[0].get("labels") or {}):
            print(f"network {site.network} {site.subnet} is up to date", flush=True)
            return
        if paths.LABEL not in (found[0].get("labels") or {}):
            raise CommandError(
                ["podman", "network", "inspect", site.network],
                1,
                f"network {site.network} exists but was not made by the lab (no {paths.LABEL} label); "
                "remove it or rename the site's lab_network",
            )
        print(f"network {site.network} has subnet {subnets}, want {site.subnet}: recreating", flush=True)
        podman.podman("network", "rm", "--force", site.network)
    podman.podman(
        "network",
        "create",
        "--subnet",
        str(site.subnet),
        *(["--internal"] if internal else ["--gateway", str(site.gateway)]),
        "--label",
        f"{paths.LABEL}=1",
        "--label",
        f"{paths.LABEL}.site={site.name}",
        site.network,
    )


def _network_args(node: Node, wan: Site | None) -> list[str]:
    if node.wan_ip is None or wan is None:
        return ["--network", node.site.network, "--ip", str(node.ip), "--mac-address", node.mac_address]
    # A VPN gateway: its site's network first (eth0, the default route), the WAN second (eth1, no route
    # beyond it); it forwards between them (its site's traffic to the other site, through the tunnels).
    return [
        "--network",
        f"{node.site.network}:ip={node.ip},mac={node.mac_address}",
        "--network",
        f"{wan.network}:ip={node.wan_ip}",
        "--sysctl",
        "net.ipv4.ip_forward=1",
    ]


def run_args(node: Node, image: str, wan: Site | None = None) -> list[str]:
    """The ``podman run`` arguments of a node (without the spec label, which hashes them)."""
    return [
        "--detach",
        "--name",
        node.name,
        "--hostname",
        node.name,
        *_network_args(node, wan),
        # nftables in the node (role common) needs NET_ADMIN; never --privileged: a privileged node
        # changed the HOST's clock and sysctls when configured.
        "--cap-add",
        "NET_ADMIN",
        # only the nodes that list them (lab_devices): /dev/net/tun for strongSwan's kernel-libipsec
        *(arg for device in node.devices for arg in ("--device", device)),
        "--systemd",
        "always",
        "--volume",
        f"{paths.APT_ARCHIVES}:/var/cache/apt/lab-pool",
        "--volume",
        f"{paths.SSH_KEY}.pub:/etc/puente-lab/authorized_key:ro",
        "--label",
        f"{paths.LABEL}=1",
        "--label",
        f"{paths.LABEL}.site={node.site.name}",
        "--label",
        f"{paths.LABEL}.groups={','.join(node.groups)}",
        image,
    ]


def spec_hash(args: Sequence[str]) -> str:
    """What a running node must match: its run arguments."""
    return hashlib.sha256("\0".join(args).encode()).hexdigest()[:12]


def key_hash() -> str:
    """The public key a node was given: a new key means new nodes (the old ones would refuse it)."""
    return hashlib.sha256(paths.SSH_KEY.with_suffix(".pub").read_bytes()).hexdigest()[:12]


def ensure_nodes(lab: Lab, nodes: Sequence[Node], image: str, remove_orphans: bool = True) -> list[Node]:
    """Create or start ``nodes``; remove lab containers of the same sites that the inventory lost.

    Returns the nodes that were created (they need a full converge)."""
    sites = {n.site.name for n in nodes}
    created: list[Node] = []
    for c in podman.ps():
        name = c["Names"][0]
        labels = c.get("Labels") or {}
        if remove_orphans and labels.get(f"{paths.LABEL}.site") in sites and name not in lab.nodes:
            print(f"node {name} is no longer in the inventory: removing it", flush=True)
            podman.remove(name)
    current = {c["Name"]: c for c in podman.inspect("container", [n.name for n in nodes])}
    for node in nodes:
        args = run_args(node, image, lab.wan)
        spec = spec_hash(args)
        key = key_hash()
        have = current.get(node.name)
        if have is not None:
            labels = have.get("Config", {}).get("Labels") or {}
            if paths.LABEL not in labels:
                raise CommandError(
                    ["podman", "container", "inspect", node.name],
                    1,
                    f"a container named {node.name} exists but was not made by the lab; remove it first",
                )
            key_label = labels.get(f"{paths.LABEL}.key")
            if labels.get(f"{paths.LABEL}.spec") == spec and key_label in (None, key):
                state = have.get("State", {})
                status = str(state.get("Status", "")).lower()
                if state.get("Running") and _alive(state.get("Pid")) and status != "paused":
                    print(f"node {node.name} {node.ip} is running", flush=True)
                    continue
                if status == "paused" and _alive(state.get("Pid")):
                    podman.podman("unpause", node.name)  # a drill froze it
                    continue
                if status in ("exited", "stopped", "created", "configured") and _start(node.name):
                    continue
                # podman's record says running/stopping but the process is gone: its conmon was killed
                # with the session that started it (CI runs right after a session ends). Start afresh.
                print(
                    f"node {node.name}: {status or 'unknown'} in podman but not alive: recreating", flush=True
                )
            else:
                print(f"node {node.name}: image, settings or SSH key changed: recreating", flush=True)
            podman.remove(node.name)
        podman.podman(
            "run", "--label", f"{paths.LABEL}.spec={spec}", "--label", f"{paths.LABEL}.key={key}", *args
        )
        created.append(node)
    return created


def _start(name: str) -> bool:
    return run(["podman", "start", name], env=podman.env(), check=False).returncode == 0


def _alive(pid: object) -> bool:
    """A live process, not a zombie: a killed conmon/init whose new parent (here PID 1, which is not
    always a reaping init) has not reaped it yet still has a /proc entry, in state Z."""
    if not (isinstance(pid, int) and pid > 0):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    return state not in ("Z", "X", "")


def remove_nodes(names: Iterable[str]) -> None:
    podman.remove(*names)


def _ssh_banner(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=1.0) as sock:
            sock.settimeout(2.0)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(nodes: Sequence[Node], timeout: float = SSH_TIMEOUT_S) -> float:
    """Poll each node's sshd until it answers with its banner; return the seconds waited."""
    start = time.monotonic()
    pending = {n.name: str(n.ip) for n in nodes}
    shown = -1
    while pending:
        for name, ip in list(pending.items()):
            if _ssh_banner(ip):
                del pending[name]
        ready = len(nodes) - len(pending)
        if ready != shown:
            print(
                f"  ssh: {ready}/{len(nodes)} nodes answer ({time.monotonic() - start:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            shown = ready
        if not pending:
            break
        if time.monotonic() - start > timeout:
            raise CommandError(
                ["wait-for-ssh"],
                1,
                f"no SSH answer after {timeout:.0f} s from: {', '.join(sorted(pending))}; "
                "see `CONTAINERS_CONF=lab/containers.conf podman logs NODE`",
            )
        time.sleep(0.5)
    return time.monotonic() - start
