"""Role `vpn` on the lab (issue 14): the on-prem gateway (group `vpn`) and the stand-in for AWS's end
(group `aws_vpn`), strongSwan over user-space ESP (kernel-libipsec, /dev/net/tun).

Both tunnels ESTABLISHED with their CHILD_SA INSTALLED on both ends, with the strongest proposal AWS and
the stack allow; IKE and ESP let in only from the peers; a changed connection is loaded without
restarting charon (a second run and a check run change nothing: tests/roles/test_site_idempotence.py
runs the whole site both ways). And the Pulumi program's own outputs (the prod
stack's mock run) go through the inventory plugin into the role, whose rendered configuration
`swanctl --load-all` accepts on the lab's gateway (where nothing may leave for AWS's real addresses).
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from puente_test_support import wait_for

from puente.lab import inventory, tunnels

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

REPO = Path(__file__).resolve().parents[2]
LAB = inventory.load()
GATEWAY = LAB.groups["vpn"][0]
AWS_END = LAB.groups["aws_vpn"][0]
ENDS = [GATEWAY, AWS_END]
CONF = "/etc/swanctl/conf.d/puente.conf"


def sas(node: Callable[[str], Any], host: str) -> dict[str, dict[str, Any]]:
    return tunnels.parse(node(host).check_output("swanctl --list-sas"))


def both_up(node: Callable[[str], Any], host: str) -> dict[str, dict[str, Any]] | None:
    found = sas(node, host)
    return found if sorted(n for n, t in found.items() if tunnels.up(t)) == ["tunnel1", "tunnel2"] else None


def main_pid(node: Callable[[str], Any], host: str) -> str:
    return node(host).check_output("systemctl show --property MainPID --value strongswan")


@pytest.mark.parametrize("host", ENDS)
def test_both_tunnels_are_established_on_both_ends(node, host: str) -> None:
    wait_for(f"tunnel1 and tunnel2 up on {host}", lambda: both_up(node, host))
    print(f"{host}: {tunnels.describe(sas(node, host))}")


def at_most_one_ike_sa_per_end(node: Callable[[str], Any], host: str) -> dict[str, dict[str, Any]] | None:
    found = sas(node, host)
    each = sorted(found) == ["tunnel1", "tunnel2"] and all(1 <= len(t["ike"]) <= 2 for t in found.values())
    return found if each else None


@pytest.mark.parametrize("host", ENDS)
def test_the_tunnels_ike_sas_do_not_pile_up(node, host: str) -> None:
    """Only the customer gateway initiates and restarts (AWS's startup_action add, roles/vpn/README.md): a
    tunnel has one IKE SA, two while a rekeying overlaps, after the drills' cuts and restores (tests/drill
    runs first). When AWS's end initiated too, the two ends' exchanges crossed and each DPD restart doubled
    them: 4 per tunnel after one cut in CI, 64 after a day of drills."""
    found = wait_for(
        f"at most two IKE SAs per tunnel on {host}", lambda: at_most_one_ike_sa_per_end(node, host)
    )
    print(f"{host}: {tunnels.describe(found)}")


@pytest.mark.parametrize("host", ENDS)
def test_the_strongest_proposal_is_negotiated_over_udp(node, host: str) -> None:
    out = node(host).check_output("swanctl --list-sas")
    # IKE: AES-256-GCM, PRF SHA-256, ECP-384 (DH 20); ESP: AES-256-GCM in UDP (user-space ESP); the first
    # CHILD_SA comes with IKE_AUTH, without a DH exchange (PFS applies from its first rekeying)
    assert out.count("AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_384") >= 2, out
    assert out.count("TUNNEL-in-UDP, ESP:AES_GCM_16-256") >= 2, out


def tun_packets(node: Callable[[str], Any], host: str) -> int:
    """Packets strongSwan's user-space ESP handed to the node through its TUN device (decrypted)."""
    link = json.loads(node(host).check_output("ip -j -s link show ipsec0"))[0]
    return int(link["stats64"]["rx"]["packets"])


def test_traffic_between_the_two_ends_crosses_a_tunnel(node) -> None:
    """The tunnels carry the two sites' networks, the VPN nodes' own site addresses included: a ping between
    them is encrypted by one end and arrives decrypted through the other's TUN device, the reply the same way
    back. (test_vpn_wan.py: the rest of the sites' traffic, and nothing else on the WAN.)"""
    before = {host: tun_packets(node, host) for host in ENDS}
    node(GATEWAY).check_output("ping -c 3 -i 0.2 -W 2 %s", str(LAB.nodes[AWS_END].ip))
    after = {host: tun_packets(node, host) for host in ENDS}
    assert after[AWS_END] - before[AWS_END] >= 3 and after[GATEWAY] - before[GATEWAY] >= 3, (before, after)


def _networks(right: Any) -> list[ipaddress.IPv4Network]:
    """An nft JSON match's right side (an address, a prefix or a set of them) as networks."""
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    return [
        ipaddress.ip_network(f"{i['prefix']['addr']}/{i['prefix']['len']}" if isinstance(i, dict) else i)
        for i in items
    ]


def accepted_sources(ruleset_json: str) -> dict[str, list[ipaddress.IPv4Network]]:
    """{"udp/500": [source networks], "esp": [...]} of the input rules that accept IKE or ESP."""
    found: dict[str, list[ipaddress.IPv4Network]] = {}
    for item in json.loads(ruleset_json)["nftables"]:
        exprs = item.get("rule", {}).get("expr", [])
        matches = [e["match"] for e in exprs if "match" in e]
        what = sources = None
        for m in matches:
            left = m["left"]
            if left.get("payload", {}).get("field") == "saddr":
                sources = _networks(m["right"])
            elif left.get("payload", {}).get("field") == "dport" and m["right"] in (500, 4500):
                what = f"{left['payload']['protocol']}/{m['right']}"
            elif left.get("meta", {}).get("key") == "l4proto" and m["right"] in (50, "esp"):
                what = "esp"
        if what and any("accept" in e for e in exprs):
            found.setdefault(what, []).extend(sources or [ipaddress.ip_network("0.0.0.0/0")])
    return found


def test_ike_and_esp_are_let_in_only_from_the_peers(node) -> None:
    # the tunnels' ends on the lab's WAN: AWS's outside addresses and the customer gateway's (overrides.yml)
    shared = inventory.shared_vars()
    peers = {
        GATEWAY: [t["outside_address"] for t in shared["vpn_tunnels"]],
        AWS_END: [shared["vpn_customer_gateway_address"]],
    }
    assert LAB.wan and all(ipaddress.ip_address(a) in LAB.wan.subnet for v in peers.values() for a in v), (
        peers
    )
    for host, addresses in peers.items():
        found = accepted_sources(node(host).check_output("nft -j list table inet puente_filter"))
        wanted = list(ipaddress.collapse_addresses(ipaddress.ip_network(a) for a in addresses))
        assert {k: list(ipaddress.collapse_addresses(v)) for k, v in found.items()} == {
            "udp/500": wanted,
            "udp/4500": wanted,
            "esp": wanted,
        }, (host, found)


@pytest.mark.parametrize("host", ENDS)
def test_charon_listens_only_for_ike(node, host: str) -> None:
    """UDP 500 and 4500, nothing else (its dhcp plugin, from the package kernel-libipsec comes with, is
    not loaded: it listened on UDP 68)."""
    sockets = node(host).check_output("ss -Hlnup")
    ports = sorted({line.split()[3].rsplit(":", 1)[1] for line in sockets.splitlines() if "charon" in line})
    assert ports == ["4500", "500"], sockets


def test_a_changed_connection_is_loaded_without_a_restart(node, run_playbook) -> None:
    before = main_pid(node, GATEWAY)
    # the inventory's value (the lab's overrides set their own DPD), put back at the end
    configured = re.search(r"dpd_delay = \d+s", node(GATEWAY).file(CONF).content_string)
    assert configured and configured.group() != "dpd_delay = 15s", configured
    try:
        recap = run_playbook("vpn.yml", "-e", "vpn_dpd_delay=15", limit=GATEWAY)
        assert recap.returncode == 0 and recap[GATEWAY]["changed"] >= 1, recap.output[-3000:]
        assert "RUNNING HANDLER [vpn : Reload swanctl]" in recap.output, recap.output[-3000:]
        assert "RUNNING HANDLER [vpn : Restart strongSwan]" not in recap.output
        assert node(GATEWAY).file(CONF).contains("dpd_delay = 15s")
        conns = node(GATEWAY).check_output("swanctl --list-conns")
        assert main_pid(node, GATEWAY) == before  # charon kept running: no restart
        assert "tunnel1" in conns and both_up(node, GATEWAY), conns
    finally:
        recap = run_playbook("vpn.yml", limit=GATEWAY)
    assert recap.returncode == 0 and node(GATEWAY).file(CONF).contains(configured.group())
    assert main_pid(node, GATEWAY) == before


# --- issue 14's acceptance: the stack's outputs -> the inventory plugin -> the role -> swanctl -----------

# While the rendered production configuration is loaded, charon initiates to AWS's (mock) public addresses:
# nothing of it may leave the lab. Dropped in the node's own output path, removed after charon restarted.
GUARD = """table inet puente_test_vpn_guard {
  chain output {
    type filter hook output priority filter; policy accept;
    ip daddr != 10.89.0.0/16 udp dport { 500, 4500 } drop
    ip daddr != 10.89.0.0/16 meta l4proto esp drop
  }
}
"""


def _stack_inventory(directory: Path) -> tuple[dict[str, Any], list[str]]:
    """The prod stack's mock run exported as an operator would (`pulumi stack output --json`, the keys
    with --show-secrets), read by the inventory plugin next to a `vpn` group holding the lab's gateway."""
    sys.path.insert(0, str(REPO / "tests" / "stacks"))
    from stacks_helpers import cli_outputs, run_stack

    prod = run_stack("prod")
    (directory / "outputs.json").write_text(json.dumps(cli_outputs(prod)))
    keys = prod.outputs["vpnPresharedKeys"]
    (directory / "secrets.json").write_text(json.dumps({"vpnPresharedKeys": keys}))
    (directory / "pulumi.yml").write_text(
        "plugin: pulumi_stack\nstack_output_file: outputs.json\nsecret_output_file: secrets.json\n"
    )
    ip = LAB.nodes[GATEWAY].ip
    (directory / "hosts.yml").write_text(
        f"all:\n  children:\n    vpn:\n      hosts:\n        {GATEWAY}: {{ansible_host: {ip}}}\n"
    )
    return prod.outputs, keys


def test_the_stacks_outputs_render_a_configuration_swanctl_loads(node, tmp_path: Path) -> None:
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    outputs, keys = _stack_inventory(inventory_dir)
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory_dir),
         "tests/roles/vpn_render.yml", "-e", f"out={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rendered = (tmp_path / f"{GATEWAY}-swanctl.conf").read_text()
    for tunnel, key in zip(outputs["vpnTunnels"], keys, strict=True):
        assert f"remote_addrs = {tunnel['outsideAddress']}" in rendered
        assert f'secret = "{key}"' in rendered
    assert f"remote_ts = {outputs['vpcCidr']}" in rendered
    assert f"local_ts = {', '.join(outputs['onpremCidrs'])}" in rendered

    gateway = node(GATEWAY)
    target = "/run/puente-test-stack-swanctl.conf"
    subprocess.run(
        ["podman", "cp", str(tmp_path / f"{GATEWAY}-swanctl.conf"), f"{GATEWAY}:{target}"], check=True
    )
    gateway.check_output("printf %s %s | nft -f -", "%s", GUARD)
    try:
        loaded = gateway.run("swanctl --load-all --noprompt --file %s", target)
        conns = gateway.check_output("swanctl --list-conns")
    finally:
        # forget the stack's connections and keys (and any SA they started): a fresh charon loads the lab's
        gateway.check_output("systemctl restart strongswan && rm -f %s", target)
        wait_for("the lab's tunnels back after the restart", lambda: both_up(node, GATEWAY))
        gateway.check_output("nft delete table inet puente_test_vpn_guard")
    assert loaded.rc == 0, loaded.stdout + loaded.stderr
    assert "successfully loaded 2 connections" in loaded.stdout, loaded.stdout
    assert "loaded ike secret 'ike-tunnel1'" in loaded.stdout, loaded.stdout
    for tunnel in outputs["vpnTunnels"]:
        assert tunnel["outsideAddress"] in conns, conns
