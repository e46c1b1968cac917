"""The WAN cut on a router the test builds itself: three network namespaces (a router between a
"site" and a "peer"), veth pairs, real forwarding; the cut is applied in the router's namespace with the
same code the drill runs on the host. Needs root (CI runs as root)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from puente.drill.faults import TABLE_NAME, NodePartition, WanCut, restore_all

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


@dataclass
class Net:
    router: str
    site: str
    dns: str
    peer: str

    def _ping(self, ns: str, address: str, wait: str) -> bool:
        return (
            sh("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", wait, address, check=False).returncode == 0
        )

    def reaches(self, ns: str, address: str) -> bool:
        """Up to 3 tries of 3 s: a loaded machine must not turn a slow reply into "cut"."""
        return any(self._ping(ns, address, "3") for _ in range(3))

    def blocked(self, ns: str, address: str) -> bool:
        """Two tries, no reply: a dropped packet never answers, however long one waits."""
        return not any(self._ping(ns, address, "1") for _ in range(2))


@pytest.fixture
def net() -> Iterator[Net]:
    """router: bridge br0 10.250.1.1/24 (the "site" network: a node .2 and the DNS .53 on it, like a
    podman network's bridge on the host) and rp 10.250.2.1/24 towards the peer site's node .2."""
    tag = uuid.uuid4().hex[:6]
    n = Net(f"pdrill-r-{tag}", f"pdrill-s-{tag}", f"pdrill-d-{tag}", f"pdrill-p-{tag}")
    try:
        for ns in (n.router, n.site, n.dns, n.peer):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", n.router, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", n.router, "addr", "add", "10.250.1.1/24", "dev", "br0")
        for ns, port, address in ((n.site, "vs", "10.250.1.2/24"), (n.dns, "vd", "10.250.1.53/24")):
            sh("ip", "-n", n.router, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", n.router, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", address, "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", "10.250.1.1")
        sh("ip", "-n", n.router, "link", "add", "rp", "type", "veth", "peer", "name", "eth0", "netns", n.peer)
        sh("ip", "-n", n.router, "addr", "add", "10.250.2.1/24", "dev", "rp")
        sh("ip", "-n", n.peer, "addr", "add", "10.250.2.2/24", "dev", "eth0")
        for ns, dev in ((n.router, "br0"), (n.router, "rp"), (n.peer, "eth0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", n.peer, "route", "add", "default", "via", "10.250.2.1")
        # the namespace's own forwarding switch, not the host's
        sh("ip", "netns", "exec", n.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield n
    finally:
        for ns in (n.router, n.site, n.dns, n.peer):
            sh("ip", "netns", "del", ns, check=False)


def test_cut_stops_traffic_between_sites_and_restore_brings_it_back(net: Net):
    cut = WanCut("10.250.1.0/24", ["10.250.2.0/24"], exempt=["10.250.1.53"], netns=net.router)
    assert net.reaches(net.peer, "10.250.1.2"), "the test network does not forward before the cut"

    assert net.reaches(net.dns, "10.250.1.2"), "the DNS does not see its site before the cut"

    cut.cut()
    assert cut.active()
    assert net.blocked(net.peer, "10.250.1.2"), "peer still reaches the isolated site"
    assert net.blocked(net.site, "10.250.2.2"), "isolated site still reaches the peer"
    assert net.blocked(net.router, "10.250.1.2"), "the host (client) still reaches the isolated site"
    # the DNS stands outside the site: reachable from the host and the peer, blind to its own site
    assert net.reaches(net.peer, "10.250.1.53"), "the exempt address (DNS) was cut from the peer"
    assert net.reaches(net.router, "10.250.1.53"), "the exempt address (DNS) was cut from the host"
    assert net.reaches(net.dns, "10.250.2.2"), "the DNS lost the peer site"
    assert net.blocked(net.dns, "10.250.1.2"), "the DNS still sees the cut-off site from inside it"

    cut.restore()
    assert not cut.active()
    assert net.reaches(net.peer, "10.250.1.2")
    assert net.reaches(net.router, "10.250.1.2")
    assert net.reaches(net.dns, "10.250.1.2")


def test_cut_without_client_cut_keeps_the_host_path(net: Net):
    cut = WanCut("10.250.1.0/24", ["10.250.2.0/24"], cut_clients=False, netns=net.router)
    cut.cut()
    try:
        assert net.blocked(net.peer, "10.250.1.2")
        assert net.reaches(net.router, "10.250.1.2")
    finally:
        cut.restore()


def test_a_second_cut_refuses_and_restore_is_idempotent(net: Net):
    cut = WanCut("10.250.1.0/24", ["10.250.2.0/24"], netns=net.router)
    cut.cut()
    with pytest.raises(RuntimeError, match=TABLE_NAME):
        cut.cut()
    cut.restore()
    cut.restore()
    assert not cut.active()


@pytest.mark.parametrize(
    ("isolate", "peers", "exempt", "message"),
    [
        ("10.250.1.0/24", ["10.250.1.128/25"], [], "overlaps"),
        ("10.250.1.0/24", ["10.250.2.0/24"], ["10.250.2.53"], "not inside"),
        ("10.250.1.0/24", [], [], "at least one peer"),
        ("10.250.1.0/24", ["10.250.2.0/24; flush ruleset"], [], "not a valid"),
    ],
)
def test_bad_input_is_refused_before_any_rule(isolate, peers, exempt, message):
    with pytest.raises(ValueError, match=message):
        WanCut(isolate, peers, exempt=exempt)


def test_partition_isolates_nodes_from_their_site_and_beyond(net: Net):
    # the "database" is the node .2: cut from the DNS beside it on the bridge and from the peer site,
    # still reachable from the host (the drill's probes)
    part = NodePartition(["10.250.1.2"], netns=net.router)
    part.cut()
    try:
        assert net.blocked(net.dns, "10.250.1.2"), "a node on the same bridge still reaches it"
        assert net.blocked(net.peer, "10.250.1.2"), "the other site still reaches it"
        assert net.reaches(net.router, "10.250.1.2"), "the host lost it"
        assert net.reaches(net.dns, "10.250.2.2"), "nodes outside the partition lost each other"
    finally:
        assert restore_all(net.router) == ["inet", "bridge"]
    assert net.reaches(net.dns, "10.250.1.2")
    assert restore_all(net.router) == []
