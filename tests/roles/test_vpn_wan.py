"""The sites talk to each other only through the VPN tunnels (issue 14's acceptance): captured on the lab.

While cross-site traffic flows (replication, etcd, HAProxy's Patroni checks run all the time; the test adds
connections from an on-prem database node to the cloud one's PostgreSQL, etcd and Patroni ports), the host
captures for a few seconds, with AF_PACKET sockets (wan_capture.py), on:

- the WAN's bridge (podman network ``puente-wan``, between the two VPN gateways): only IKE and ESP in UDP
  (ports 500 and 4500) and ARP cross it, UDP 4500 in both directions; never TCP 5432, 2379 or 8008;
- each joined site's bridge: every frame from the other site arrives from the site's own VPN gateway's MAC
  (decapsulated there), never from the host's bridge (routed around the tunnels). The DNS node plays Route
  53 and keeps the host's direct path: frames to or from it are left out. The driven connections are seen
  there, so the tunnels did carry them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from wan_capture import ETH_P_ARP, ETH_P_IP, TCP, UDP, Frame, capture

from puente.lab import inventory, podman
from puente.lab.routing import OUTSIDE_GROUPS

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

LAB = inventory.load()
SECONDS = 6.0
IPSEC_PORTS = {500, 4500}
CLEAR_PORTS = (5432, 2379, 8008)  # PostgreSQL (replication), etcd, Patroni's REST API (HAProxy's checks)
JOINED = {name: gw for name in LAB.sites if (gw := LAB.gateway_of(name)) is not None}
OUTSIDE = sorted(str(n.ip) for g in OUTSIDE_GROUPS for n in LAB.in_group(g))


def bridge(network: str) -> str:
    found = podman.inspect("network", [network])
    assert found and found[0].get("network_interface"), f"podman network {network} has no bridge"
    return str(found[0]["network_interface"])


def member(site: str, group: str) -> inventory.Node:
    return next(n for n in LAB.in_group(group) if n.site.name == site and n.wan_ip is None)


def drive(node: Callable[[str], Any], stop: threading.Event, errors: list[str]) -> None:
    """Connections from an on-prem database node to the cloud one's PostgreSQL, etcd and Patroni ports,
    again and again until ``stop``."""
    source, target = member("onprem", "etcd"), member("cloud", "etcd")
    script = (
        "import socket,sys\n"
        "for p in sys.argv[2:]: socket.create_connection((sys.argv[1], int(p)), 3).close()\n"
    )
    command = "python3 -c %s" + " %s" * (1 + len(CLEAR_PORTS))
    while not stop.is_set():
        try:
            done = node(source.name).run(command, script, str(target.ip), *map(str, CLEAR_PORTS))
        except Exception as exc:  # reported by the test, not lost in the thread
            errors.append(repr(exc))
            return
        if done.rc != 0:
            errors.append(done.stderr[-500:])
        stop.wait(0.5)


def wan_verdict(frames: list[Frame]) -> tuple[Counter[str], list[Frame]]:
    """Counts of what crossed the WAN, and every frame that is neither ARP nor UDP to or from IKE's ports."""
    kinds: Counter[str] = Counter()
    other = []
    for f in frames:
        if f.ethertype == ETH_P_ARP:
            kinds["arp"] += 1
        elif f.ethertype == ETH_P_IP and f.proto == UDP and {f.sport, f.dport} & IPSEC_PORTS:
            kinds[f"udp {f.src} > {f.dst}:{f.dport}"] += 1
        else:
            other.append(f)
    return kinds, other


def test_only_ipsec_crosses_the_wan_and_the_sites_see_each_other_through_their_gateway(node) -> None:
    assert LAB.wan is not None and sorted(JOINED) == ["cloud", "onprem"], (LAB.wan, JOINED)
    interfaces = {"wan": bridge(LAB.wan.network), **{s: bridge(LAB.sites[s].network) for s in JOINED}}
    stop, errors = threading.Event(), []
    driver = threading.Thread(target=drive, args=(node, stop, errors), daemon=True)
    driver.start()
    try:
        frames = capture(interfaces, SECONDS)
    finally:
        stop.set()
        driver.join(30)
    assert not errors, f"the driven connections failed: {errors[:3]}"

    kinds, other = wan_verdict(frames["wan"])
    print(f"\nWAN ({interfaces['wan']}, {SECONDS:.0f} s): {len(frames['wan'])} frames: {dict(kinds)}")
    clear = [f.describe() for f in other if f.proto == TCP and {f.sport, f.dport} & set(CLEAR_PORTS)]
    assert not clear, f"TCP 5432/2379/8008 in clear on the WAN: {len(clear)} frames, e.g. {clear[:10]}"
    shown = [f.describe() for f in other[:10]]
    assert not other, f"on the WAN besides IKE/ESP-in-UDP and ARP: {len(other)} frames, e.g. {shown}"
    # ESP in UDP both ways between the customer gateway and AWS's end
    customer = str(JOINED["onprem"].wan_ip)
    esp = [f for f in frames["wan"] if f.proto == UDP and f.sport == 4500 and f.dport == 4500]
    sent, received = sum(f.src == customer for f in esp), sum(f.dst == customer for f in esp)
    assert sent and received, f"UDP 4500 from {customer}: {sent} frames, to it: {received}: {dict(kinds)}"

    for site, gateway in JOINED.items():
        others = [LAB.sites[s].subnet for s in JOINED if s != site]
        from_other = [
            f for f in frames[site]
            if f.ethertype == ETH_P_IP and f.in_networks("src", others)
            and f.src not in OUTSIDE and f.dst not in OUTSIDE
        ]  # fmt: skip
        macs = Counter(f.src_mac for f in from_other)
        print(f"{site} ({interfaces[site]}): {len(from_other)} frames from {others}, by MAC {dict(macs)}")
        assert from_other, f"{site}: no frame from {others} seen on {interfaces[site]} in {SECONDS} s"
        wrong = [f.describe() for f in from_other if f.src_mac != gateway.mac_address]
        assert not wrong, (
            f"{site}: frames from the other site not sent by its gateway {gateway.name} "
            f"({gateway.mac_address}): {len(wrong)}, e.g. {wrong[:10]}"
        )
    source, target = member("onprem", "etcd"), member("cloud", "etcd")
    arrived = {
        f.dport for f in frames["cloud"]
        if f.proto == TCP and f.src == str(source.ip) and f.dst == str(target.ip)
    }  # fmt: skip
    assert set(CLEAR_PORTS) <= arrived, (
        f"the driven connections {source.name} -> {target.name} seen on the cloud bridge: "
        f"ports {sorted(p for p in arrived if p is not None)}, expected {CLEAR_PORTS}"
    )
