"""roles/vpn/filter_plugins/vpn_swanctl.py and roles/puente's puente_ipsec_rules: the stack's tunnels as
swanctl connections and secrets, refused when AWS or this project would not accept them; the firewall's
IKE and ESP rules in role common's shape, read by common's own filter (no lab here)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]


vpn = load_module(REPO / "roles" / "vpn" / "filter_plugins" / "vpn_swanctl.py")
ipsec = load_module(REPO / "roles" / "puente" / "filter_plugins" / "puente_ipsec.py")
fw = load_module(REPO / "roles" / "common" / "filter_plugins" / "common_firewall.py")

OPTIONS: dict[str, Any] = {
    "ike_versions": ["ikev2"],
    "phase1_encryption_algorithms": ["AES256-GCM-16", "AES256"],
    "phase1_integrity_algorithms": ["SHA2-256"],
    "phase1_dh_group_numbers": [14, 19, 20],
    "phase1_lifetime_seconds": 28800,
    "phase2_encryption_algorithms": ["AES256-GCM-16", "AES256"],
    "phase2_integrity_algorithms": ["SHA2-256"],
    "phase2_dh_group_numbers": [14, 19, 20],
    "phase2_lifetime_seconds": 3600,
    "dpd_timeout_seconds": 30,
    "dpd_timeout_action": "clear",
    "rekey_margin_time_seconds": 540,
    "rekey_fuzz_percentage": 100,
    "replay_window_size": 1024,
    "startup_action": "add",
}
TUNNELS = [
    {"tunnel": 1, "outside_address": "198.51.100.10", "psk": "key.one_12345", **OPTIONS},
    {"tunnel": 2, "outside_address": "198.51.100.20", "psk": "key.two_12345", **OPTIONS},
]
ONPREM, VPC = ["10.89.0.0/16"], ["10.0.0.0/16"]
CGW = "203.0.113.7"


def connections(tunnels: list[dict[str, Any]] = TUNNELS, end: str = "onprem") -> list[dict[str, Any]]:
    return vpn.vpn_swanctl_connections(tunnels, end, ONPREM, VPC, CGW, "192.0.2.5")


def test_one_connection_per_tunnel_from_the_customer_gateway() -> None:
    first, second = connections()
    assert (first["name"], first["local_addrs"], first["remote_addrs"]) == (
        "tunnel1",
        "192.0.2.5",
        "198.51.100.10",
    )
    assert (first["local_id"], first["remote_id"]) == (
        CGW,
        "198.51.100.10",
    )
    assert second["remote_addrs"] == second["remote_id"] == "198.51.100.20"
    assert (first["local_ts"], first["remote_ts"]) == (ONPREM, VPC)
    assert first["start_action"] == "start" and first["replay_window"] == 1024
    # the customer gateway restarts a tunnel found dead or closed by AWS, which never initiates
    assert (first["dpd_action"], first["close_action"]) == ("restart", "restart")
    # the same selectors on both: the first tunnel's policies win while its SA is up (lower is preferred)
    assert first["priority"] < second["priority"]
    assert (first["reqid"], second["reqid"]) == (1, 2)  # a policy each, not one shared by equal selectors
    assert first["unique"] == "replace"  # the duplicates of both ends initiating do not pile up


def test_proposals_are_what_aws_accepts_strongest_group_first() -> None:
    (first, _) = connections()
    # an AEAD proposal cannot carry an integrity algorithm: two proposals, each with every group
    assert first["proposals"] == [
        "aes256gcm16-prfsha256-ecp384-ecp256-modp2048",
        "aes256-sha256-ecp384-ecp256-modp2048",
    ]
    # ESP: PFS with the same groups, no PRF
    assert first["esp_proposals"] == [
        "aes256gcm16-ecp384-ecp256-modp2048",
        "aes256-sha256-ecp384-ecp256-modp2048",
    ]


def test_rekeying_follows_aws_margin_and_fuzz() -> None:
    (first, _) = connections()
    # hard end at the lifetime; rekey 540 s before it, up to 540 s (100 %) earlier
    assert first["ike"] == {"rekey_time": 28260, "over_time": 540, "rand_time": 540, "life_time": 28800}
    assert first["child"] == {"rekey_time": 3060, "over_time": 540, "rand_time": 540, "life_time": 3600}
    half = copy.deepcopy(TUNNELS)
    for t in half:
        t["rekey_fuzz_percentage"] = 50
    assert connections(half)[0]["child"]["rand_time"] == 270


def test_the_aws_end_mirrors_it() -> None:
    first, second = connections(end="aws")
    assert (first["local_addrs"], first["remote_addrs"]) == ("198.51.100.10", CGW)
    assert (first["local_id"], first["remote_id"]) == ("198.51.100.10", CGW)
    assert (first["local_ts"], first["remote_ts"]) == (VPC, ONPREM)
    assert second["local_addrs"] == "198.51.100.20"
    # AWS's defaults: its end waits, and clears a dead peer's SA
    assert {(c["start_action"], c["dpd_action"], c["close_action"]) for c in (first, second)} == {
        ("none", "clear", "none")
    }
    initiating = [dict(t, startup_action="start", dpd_timeout_action="restart") for t in TUNNELS]
    assert {(c["start_action"], c["dpd_action"]) for c in connections(initiating, end="aws")} == {
        ("start", "restart")
    }
    # only the customer gateway deletes duplicates: both ends doing it could delete each other's at once
    assert {c["unique"] for c in connections(end="aws")} == {"no"}


def test_secrets_bind_each_key_to_both_identities() -> None:
    assert vpn.vpn_swanctl_secrets(TUNNELS, "onprem", CGW) == [
        {"name": "tunnel1", "ids": [CGW, "198.51.100.10"], "secret": "key.one_12345"},
        {"name": "tunnel2", "ids": [CGW, "198.51.100.20"], "secret": "key.two_12345"},
    ]
    assert vpn.vpn_swanctl_secrets(TUNNELS, "onprem", CGW, "gw.example.net")[0]["ids"][0] == "gw.example.net"


def test_a_tunnel_without_its_key_is_refused_with_the_way_to_get_it() -> None:
    keyless = [{k: v for k, v in t.items() if k != "psk"} for t in TUNNELS]
    with pytest.raises(AnsibleFilterError, match=r"tunnel 1: has no pre-shared key.*vpnPresharedKeys"):
        vpn.vpn_swanctl_secrets(keyless, "onprem", CGW)


def _changed(**change: Any) -> list[dict[str, Any]]:
    return [dict(TUNNELS[0], **change), TUNNELS[1]]


@pytest.mark.parametrize(
    ("tunnels", "message"),
    [
        ([], "vpn_tunnels must be a non-empty list"),
        (_changed(ike_versions=["ikev1", "ikev2"]), r"tunnel 1: ike_versions must be \[ikev2\]"),
        (_changed(phase1_encryption_algorithms=["AES128"]), r"phase1 encryption \['AES128'\] not accepted"),
        (_changed(phase2_integrity_algorithms=["SHA1"]), r"phase2 integrity \['SHA1'\] not accepted"),
        (_changed(phase2_dh_group_numbers=[2, 14]), r"phase2 DH groups \[2\] not accepted"),
        (_changed(rekey_margin_time_seconds=1900), "more than half the phase 2 lifetime"),
        (_changed(rekey_fuzz_percentage=150), "rekey_fuzz_percentage must be 0-100"),
        (_changed(outside_address="aws.example.net"), "outside_address must be an IP address"),
        ([TUNNELS[0], dict(TUNNELS[1], tunnel=1)], "tunnel numbers must be unique"),
        ([{k: v for k, v in TUNNELS[0].items() if k != "phase2_lifetime_seconds"}], "lacks phase2_lifetime"),
    ],
)
def test_what_aws_or_the_project_refuses_fails_before_any_change(tunnels: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        connections(tunnels)


def test_bad_ends_and_networks_are_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="vpn_end must be one of"):
        connections(end="cloud")
    with pytest.raises(AnsibleFilterError, match="vpn_remote_cidrs must be a non-empty list"):
        vpn.vpn_swanctl_connections(TUNNELS, "onprem", ONPREM, [], CGW, "192.0.2.5")


def test_the_firewall_opens_ike_and_esp_to_the_peers_only() -> None:
    rules = fw.common_firewall_rules([ipsec.puente_ipsec_rules(["198.51.100.10", "198.51.100.20"])], {}, {})
    assert [(r["proto"], r["port"], r["v4"]) for r in rules] == [
        ("esp", "", ["198.51.100.10/32", "198.51.100.20/32"]),
        ("udp", "500", ["198.51.100.10/32", "198.51.100.20/32"]),
        ("udp", "4500", ["198.51.100.10/32", "198.51.100.20/32"]),
    ]
    assert fw.common_firewall_accepts(rules, "198.51.100.20", 4500, "udp")
    assert not fw.common_firewall_accepts(rules, "192.0.2.99", 500, "udp")
    assert not fw.common_firewall_accepts(rules, "198.51.100.10", 22, "tcp")
    assert ipsec.puente_ipsec_rules([]) == []  # no tunnels, nothing opened


def test_an_esp_rule_takes_no_port() -> None:
    with pytest.raises(AnsibleFilterError, match="an esp rule has from and no port"):
        fw.common_firewall_rules([[{"proto": "esp", "port": 50, "from": ["any"]}]], {}, {})
    assert fw.common_firewall_rules([[{"proto": "esp", "from": ["any"]}]], {}, {})[0]["any"] is True


def test_the_gateway_forwards_into_the_tunnels_and_back_only_what_ipsec_decapsulated() -> None:
    kernel = fw.common_firewall_forward(
        [{"from": ONPREM, "to": VPC}, {"from": VPC, "to": ONPREM, "through": "ipsec"}]
    )
    assert kernel == [
        {"family": "ip", "saddr": "10.89.0.0/16", "daddr": "10.0.0.0/16", "match": ""},
        {"family": "ip", "saddr": "10.0.0.0/16", "daddr": "10.89.0.0/16", "match": "meta ipsec exists"},
    ]
    user_space = fw.common_firewall_forward(
        [{"from": VPC, "to": [*ONPREM, "fd00::/64"], "through": "ipsec0"}]
    )
    assert user_space == [
        {"family": "ip", "saddr": "10.0.0.0/16", "daddr": "10.89.0.0/16", "match": 'iifname "ipsec0"'}
    ]
    assert fw.common_firewall_forward([]) == []
    # no stack read yet (vpn_local_cidrs and vpn_remote_cidrs empty): nothing forwarded, no failure
    assert (
        fw.common_firewall_forward([{"from": [], "to": VPC}, {"from": VPC, "to": [], "through": "ipsec"}])
        == []
    )


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"from": ONPREM}], r"common_firewall_forward\[0\]: to must be a list of CIDRs"),
        ([{"from": ["10.0.0.300/8"], "to": VPC}], r"common_firewall_forward\[0\]: from: "),
        ([{"from": ONPREM, "to": VPC, "through": "eth0; drop"}], "is no interface"),
        ([{"from": ONPREM, "to": VPC, "via": "x"}], r"expected \{from, to, through\}"),
    ],
)
def test_a_bad_forwarding_rule_is_refused(rules: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        fw.common_firewall_forward(rules)


def test_two_initiators_that_restart_each_others_duplicates_are_refused() -> None:
    """AWS initiating too (startup_action start) and the customer gateway restarting what the peer closes:
    each end's uniqueness check closes the other's duplicates, which the other restarts, again and again."""
    initiating = [dict(t, startup_action="start") for t in TUNNELS]
    with pytest.raises(AnsibleFilterError, match=r"tunnel 1: AWS's end initiates .* vpn_close_action: none"):
        vpn.vpn_swanctl_connections(initiating, "onprem", ONPREM, VPC, CGW, "192.0.2.5")
    allowed = vpn.vpn_swanctl_connections(
        initiating, "onprem", ONPREM, VPC, CGW, "192.0.2.5", close_action="none"
    )
    assert {c["close_action"] for c in allowed} == {"none"}
