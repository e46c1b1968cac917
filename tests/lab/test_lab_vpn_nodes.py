"""The lab's VPN nodes (issue 14): /dev/net/tun for those nodes only, through the inventory's
`lab_devices`, and the tunnels' states as `puente lab status` reads them from swanctl (no podman here)."""

from __future__ import annotations

from puente.lab import inventory, tunnels


def test_the_committed_lab_gives_the_device_to_the_two_vpn_nodes_only() -> None:
    lab = inventory.load()
    given = sorted(n.name for n in lab.nodes.values() if n.devices)
    assert given == sorted(lab.groups["vpn"] + lab.groups["aws_vpn"]) == ["cloud-vpn1", "onprem-vpn1"]


# What swanctl 5.9.8 printed on the lab's onprem-vpn1 (the first CHILD_SA is made in IKE_AUTH, so no DH
# group shows in its ESP proposal), then an IKE SA still connecting (its shape; no CHILD_SA yet).
LIST_SAS = """\
tunnel2: #4, ESTABLISHED, IKEv2, 30b3bab86910fb75_i* 8db75d26de14dd7a_r
  local  '10.89.1.5' @ 10.89.1.5[4500]
  remote '10.89.2.6' @ 10.89.2.6[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_384
  established 8s ago, rekeying in 27796s
  tunnel2: #2, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 8s ago, rekeying in 2654s, expires in 3592s
    in  50cdf6e4,    320 bytes,     6 packets,     2s ago
    local  10.89.1.0/24
    remote 10.89.2.0/24
tunnel1: #3, CONNECTING, IKEv2, 3d5ab5340d28979c_i*
  local  '10.89.1.5' @ 10.89.1.5[500]
  remote '10.89.2.5' @ 10.89.2.5[500]
"""


def test_status_reads_each_tunnel_and_its_child_sa() -> None:
    found = tunnels.parse(LIST_SAS)
    assert found == {
        "tunnel2": {"ike": ["ESTABLISHED"], "children": ["INSTALLED"]},
        "tunnel1": {"ike": ["CONNECTING"], "children": []},
    }
    assert tunnels.up(found["tunnel2"]) and not tunnels.up(found["tunnel1"])
    assert tunnels.describe(found) == "tunnel1 CONNECTING/-, tunnel2 ESTABLISHED/INSTALLED"
    assert tunnels.describe(tunnels.parse("")) == "no SA"
