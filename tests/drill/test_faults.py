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

from puente.drill.faults import TABLE_NAME, NodePartition, TunnelCut, WanCut, restore_all

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
        WanCut(isolate, peers, exempt=exempt, cut_clients=False)


def test_a_cut_without_peers_cuts_the_clients_only(net: Net):
    """What site-failover --fault tunnel adds to the tunnels' cut when every other site is reached through
    them: the host (the drill's client) loses the site, the sites' routing is left to the tunnel cut."""
    cut = WanCut("10.250.1.0/24", [], exempt=["10.250.1.53"], netns=net.router)
    cut.cut()
    try:
        assert net.blocked(net.router, "10.250.1.2"), "the host (client) still reaches the site"
        assert net.reaches(net.router, "10.250.1.53"), "the exempt DNS was cut from the host"
        assert net.reaches(net.peer, "10.250.1.2"), "a cut without peers cut a peer"
    finally:
        cut.restore()


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
        assert restore_all(net.router) == ["inet puente_wan", "bridge puente_wan"]
    assert net.reaches(net.dns, "10.250.1.2")
    assert restore_all(net.router) == []


# -- the tunnel cut: the WAN between the sites' VPN gateways, a bridge with no address on the host ---------

_ECHO = (
    "import selectors,socket,sys\n"
    "sel=selectors.DefaultSelector()\n"
    # one socket per address, as charon answers from the address it was asked on
    "for address in sys.argv[1:]:\n"
    "    for port in (500,4500):\n"
    "        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((address,port)); sel.register(s,1)\n"
    "print('ready',flush=True)\n"
    "while True:\n"
    "    for key,_ in sel.select():\n"
    "        data,peer=key.fileobj.recvfrom(2048); key.fileobj.sendto(data,peer)\n"
)
_ASK = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind((sys.argv[1],int(sys.argv[3])))\n"
    "s.settimeout(1.0); s.sendto(b'ike',(sys.argv[2],int(sys.argv[3])))\n"
    "try:\n"
    "    print(s.recvfrom(2048)[0].decode())\n"
    "except TimeoutError:\n"
    "    sys.exit(1)\n"
)


@dataclass
class Wan:
    router: str
    gateway: str
    aws: str
    other: str

    def answers(self, ns: str, src: str, dst: str, port: int) -> bool:
        """A datagram from src:port to dst:port (IKE's 500, ESP in UDP's 4500) and its echo back."""
        return (
            sh("ip", "netns", "exec", ns, "python3", "-c", _ASK, src, dst, str(port), check=False).returncode
            == 0
        )

    def reaches(self, ns: str, src: str, dst: str, port: int) -> bool:
        return any(self.answers(ns, src, dst, port) for _ in range(3))

    def blocked(self, ns: str, src: str, dst: str, port: int) -> bool:
        return not any(self.answers(ns, src, dst, port) for _ in range(2))


@pytest.fixture
def wan() -> Iterator[Wan]:
    """router: bridge wan0 WITHOUT an address (like the lab's internal podman network) with three ports:
    the customer gateway 10.250.9.10, AWS's end holding both tunnels' outside addresses .250 and .251, and
    another WAN address .20."""
    tag = uuid.uuid4().hex[:6]
    w = Wan(f"ptun-r-{tag}", f"ptun-g-{tag}", f"ptun-a-{tag}", f"ptun-o-{tag}")
    echo = None
    try:
        for ns in (w.router, w.gateway, w.aws, w.other):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", w.router, "link", "add", "wan0", "type", "bridge")
        sh("ip", "-n", w.router, "link", "set", "wan0", "up")
        for ns, port, addresses in (
            (w.gateway, "vg", ["10.250.9.10/24"]),
            (w.aws, "va", ["10.250.9.250/24", "10.250.9.251/24"]),
            (w.other, "vo", ["10.250.9.20/24"]),
        ):
            sh("ip", "-n", w.router, "link", "add", port, "type", "veth", "peer", "name", "eth1", "netns", ns)
            sh("ip", "-n", w.router, "link", "set", port, "master", "wan0", "up")
            for address in addresses:
                sh("ip", "-n", ns, "addr", "add", address, "dev", "eth1")
            sh("ip", "-n", ns, "link", "set", "eth1", "up")
        echo = subprocess.Popen(
            ["ip", "netns", "exec", w.aws, "python3", "-c", _ECHO, "10.250.9.250", "10.250.9.251"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        yield w
    finally:
        if echo is not None:
            echo.kill()
            echo.wait(5)
        for ns in (w.router, w.gateway, w.aws, w.other):
            sh("ip", "netns", "del", ns, check=False)


def test_tunnel_cut_takes_down_the_preferred_tunnel_only(wan: Wan):
    gw, t1, t2 = "10.250.9.10", "10.250.9.250", "10.250.9.251"
    for port in (500, 4500):
        assert wan.reaches(wan.gateway, gw, t1, port), (
            f"the test WAN does not carry UDP {port} before the cut"
        )
    cut = TunnelCut("wan0", gw, [t1], netns=wan.router)
    cut.cut()
    try:
        assert cut.active()
        for port in (500, 4500):
            assert wan.blocked(wan.gateway, gw, t1, port), f"UDP {port} still crosses to tunnel1's end"
            assert wan.reaches(wan.gateway, gw, t2, port), f"tunnel2's UDP {port} was cut too"
            assert wan.reaches(wan.other, "10.250.9.20", t1, port), "another WAN address lost tunnel1's end"
    finally:
        cut.restore()
    assert not cut.active()
    assert wan.reaches(wan.gateway, gw, t1, 4500)


def test_tunnel_cut_of_both_tunnels_stacks_with_a_wan_cut_and_cleanup_removes_all(wan: Wan):
    gw = "10.250.9.10"
    both = TunnelCut("wan0", gw, ["10.250.9.250", "10.250.9.251"], netns=wan.router)
    # a WAN cut in the same namespace at the same time: the tables are the drill's own, by name
    cut = WanCut("10.250.1.0/24", ["10.250.2.0/24"], exempt=["10.250.1.53"], netns=wan.router)
    both.cut()
    cut.cut()
    try:
        for outside in ("10.250.9.250", "10.250.9.251"):
            assert wan.blocked(wan.gateway, gw, outside, 500)
            assert wan.blocked(wan.gateway, gw, outside, 4500)
        with pytest.raises(RuntimeError, match="puente_wan_tunnel"):
            both.cut()
    finally:
        assert restore_all(wan.router) == ["inet puente_wan", "bridge puente_wan", "bridge puente_wan_tunnel"]
    assert not both.active() and not cut.active()
    assert wan.reaches(wan.gateway, gw, "10.250.9.251", 4500)


def test_tunnel_cut_acts_on_its_bridge_only(wan: Wan):
    """Another bridge's ports: nothing on the WAN is dropped (the rules are bound to the WAN's bridge);
    a bridge without ports is refused before any rule."""
    sh("ip", "-n", wan.router, "link", "add", "other0", "type", "bridge")
    with pytest.raises(RuntimeError, match="no ports"):
        TunnelCut("other0", "10.250.9.10", ["10.250.9.250"], netns=wan.router).cut()
    sh("ip", "-n", wan.router, "link", "add", "vx", "type", "veth", "peer", "name", "vy")
    sh("ip", "-n", wan.router, "link", "set", "vx", "master", "other0", "up")
    cut = TunnelCut("other0", "10.250.9.10", ["10.250.9.250"], netns=wan.router)
    assert '"vx"' in cut.ruleset() and '"vg"' not in cut.ruleset()
    cut.cut()
    try:
        assert wan.reaches(wan.gateway, "10.250.9.10", "10.250.9.250", 4500)
    finally:
        cut.restore()


@pytest.mark.parametrize(
    ("bridge", "gateway", "outside", "message"),
    [
        ("wan0", "10.250.9.10", [], "at least one"),
        ("wan0", "10.250.9.10", ["10.250.9.10"], "the gateway itself"),
        ("wan0", "10.250.9.10", ["10.250.9.250 } drop"], "Only decimal digits"),
        ('wan0" accept', "10.250.9.10", ["10.250.9.250"], "not an interface name"),
    ],
)
def test_bad_tunnel_cut_input_is_refused(bridge, gateway, outside, message):
    with pytest.raises(ValueError, match=message):
        TunnelCut(bridge, gateway, outside)
