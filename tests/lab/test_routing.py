"""The host as the sites' router (src/puente/lab/routing.py): sites joined by the VPN reach each other only
through their gateways, the Route 53 stand-in keeps the direct path. The plan is checked here; the lab test
(tests/roles/test_vpn.py) captures the WAN and the sites' bridges while traffic crosses."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from wan_lab import WAN_LAB

from puente.lab import inventory, routing

HOSTS = WAN_LAB
BRIDGES = {"onprem": "cni-podman2", "cloud": "cni-podman1", "witness": "cni-podman3"}


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> inventory.Lab:
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent(HOSTS))
    monkeypatch.setattr(routing, "_bridge", lambda site: BRIDGES[site.name])
    return inventory.load([path])


def test_each_joined_site_sends_the_other_to_its_own_gateway(lab: inventory.Lab) -> None:
    rules, routes, _ = routing.gateway_plan(lab)
    assert routes == [
        ["replace", "10.89.2.0/24", "via", "10.89.1.5", "dev", "cni-podman2", "table", "10891"],
        ["replace", "10.89.1.0/24", "via", "10.89.2.5", "dev", "cni-podman1", "table", "10892"],
    ]
    # the Route 53 stand-in first, both ways, through the host's own routes; the witness is not joined
    assert rules == [
        ["add", "pref", "10890", "from", "10.89.1.53", "lookup", "main"],
        ["add", "pref", "10890", "to", "10.89.1.53", "lookup", "main"],
        ["add", "pref", "10891", "from", "10.89.1.0/24", "to", "10.89.2.0/24", "lookup", "10891"],
        ["add", "pref", "10891", "from", "10.89.2.0/24", "to", "10.89.1.0/24", "lookup", "10892"],
    ]


def test_the_host_fails_closed_and_sends_no_redirect(lab: inventory.Lab) -> None:
    _, _, ruleset = routing.gateway_plan(lab)
    assert (
        "ip saddr 10.89.1.0/24 ip daddr 10.89.2.0/24 ip saddr != { 10.89.1.53 } ip daddr != { 10.89.1.53 } "
        'oifname "cni-podman1" iifname != "cni-podman1" counter drop'
    ) in ruleset
    assert "ip saddr 10.89.2.0/24 ip daddr 10.89.1.0/24" in ruleset
    assert 'oifname "cni-podman2" iifname != "cni-podman2" counter drop' in ruleset
    assert 'oifname { "cni-podman2", "cni-podman1" } icmp type redirect counter drop' in ruleset
    assert "10.89.3.0/24" not in ruleset


def test_the_ruleset_is_one_nft_accepts(lab: inventory.Lab) -> None:
    _, _, ruleset = routing.gateway_plan(lab)
    nft = subprocess.run(["nft", "-c", "-f", "-"], input=ruleset, text=True, capture_output=True, check=False)
    if nft.returncode and "Operation not permitted" in nft.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert nft.returncode == 0, nft.stderr


def test_no_gateway_no_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(
        textwrap.dedent(HOSTS)
        .replace(", lab_wan_address: 10.89.250.10", "")
        .replace(", lab_wan_address: 10.89.250.250", "")
    )
    monkeypatch.setattr(routing, "_bridge", lambda site: BRIDGES[site.name])
    _rules, routes, ruleset = routing.gateway_plan(inventory.load([path]))
    assert routes == [] and "drop" not in ruleset


def test_a_lab_without_gateways_leaves_the_hosts_routing_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI tests bring up and down a lab of their own, without a WAN, while the shared lab's tunnels
    carry its sites: its up and down must not touch the shared lab's rules and table."""
    path = tmp_path / "hosts.yml"
    path.write_text(
        textwrap.dedent(HOSTS)
        .replace(", lab_wan_address: 10.89.250.10", "")
        .replace(", lab_wan_address: 10.89.250.250", "")
    )
    commands: list[list[str]] = []
    monkeypatch.setattr(routing, "run", lambda argv, **_: commands.append(list(argv)))
    plain = inventory.load([path])
    routing.through_gateways(plain)
    routing.forget_gateways(plain)
    assert commands == []
