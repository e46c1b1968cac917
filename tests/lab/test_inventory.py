"""The lab inventory reader: a malformed inventory is refused with every problem named (no podman here)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from wan_lab import WAN_LAB

from puente.lab import inventory, nodes
from puente.lab.inventory import InventoryError

GOOD = """
all:
  children:
    onprem:
      vars: {lab_network: puente-onprem, lab_subnet: 10.89.1.0/24}
      hosts:
        onprem-edge1: {ansible_host: 10.89.1.10}
        onprem-api1: {ansible_host: 10.89.1.21}
    cloud:
      vars: {lab_network: puente-cloud, lab_subnet: 10.89.2.0/24}
      hosts:
        cloud-api1: {ansible_host: 10.89.2.21, lab_mac: "02:aa:00:00:00:01"}
    api_nodes:
      children:
        onprem_api: {hosts: {onprem-api1: }}
        cloud_api: {hosts: {cloud-api1: }}
    gateways: {hosts: {onprem-edge1: }}
"""


def load(tmp_path: Path, text: str) -> inventory.Lab:
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent(text))
    return inventory.load([path])


def test_sites_nodes_groups_and_macs(tmp_path: Path) -> None:
    lab = load(tmp_path, GOOD)
    assert sorted(lab.sites) == ["cloud", "onprem"]
    assert str(lab.sites["cloud"].gateway) == "10.89.2.1"
    api1 = lab.nodes["onprem-api1"]
    assert (api1.site.name, str(api1.ip), api1.mac_address) == ("onprem", "10.89.1.21", "02:00:0a:59:01:15")
    assert lab.nodes["cloud-api1"].mac_address == "02:aa:00:00:00:01"
    assert sorted(n.name for n in lab.in_group("api_nodes")) == ["cloud-api1", "onprem-api1"]
    assert [n.name for n in lab.for_sites(["cloud"])] == ["cloud-api1"]


def test_the_committed_lab_inventory_is_valid() -> None:
    lab = inventory.load()
    assert "onprem" in lab.sites
    assert {"gateways", "loadbalancers", "api_nodes", "postgresql", "rabbitmq", "dns"} <= set(lab.groups)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all: [", "not valid YAML"),
        ("hosts: {}", "`all:` group"),
        ("all: {children: {g: {hosts: {n1: {ansible_host: 10.0.0.5}}}}}", "no site group"),
        (
            GOOD.replace("ansible_host: 10.89.1.21", "ansible_host: 10.89.2.99"),
            "10.89.2.99 is not a usable node address of onprem",
        ),
        (
            GOOD.replace("ansible_host: 10.89.1.21", "ansible_host: 10.89.1.10"),
            "10.89.1.10 is already used by",
        ),
        (GOOD.replace("ansible_host: 10.89.1.21", "ansible_host: 10.89.1.1"), "not a usable node address"),
        (
            GOOD.replace("ansible_host: 10.89.1.21", "ansible_host: api.example"),
            "must be a fixed IPv4 address",
        ),
        (GOOD.replace("lab_subnet: 10.89.2.0/24", "lab_subnet: 10.89.0.0/16"), "overlapping subnets"),
        (GOOD.replace("lab_subnet: 10.89.2.0/24", "lab_subnet: banana"), "lab_subnet must be an IPv4 CIDR"),
        (GOOD.replace("onprem-edge1: {ansible_host", "Onprem_Edge1: {ansible_host"), "must be a DNS label"),
        (GOOD + "    extra: {hosts: {lost-node: {ansible_host: 10.89.3.3}}}\n", "exactly one site group"),
        (GOOD.replace('lab_mac: "02:aa:00:00:00:01"', "lab_mac: nope"), "lab_mac must look like"),
        (GOOD.replace("gateways: {hosts:", "gateways: {hots:"), "unknown keys ['hots']"),
    ],
)
def test_malformed_inventory_is_refused_with_the_problem_named(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(InventoryError) as err:
        load(tmp_path, text)
    assert expected in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("ansible_host: 10.89.1.21", "ansible_host: 10.89.1.10").replace(
        "ansible_host: 10.89.2.21", "ansible_host: 10.89.1.77"
    )
    with pytest.raises(InventoryError) as err:
        load(tmp_path, text)
    message = str(err.value)
    assert "onprem-api1" in message and "cloud-api1" in message


# The VPN nodes (issue 14): /dev/net/tun for the nodes that list it in lab_devices, and for no other.
TUN_HOSTS = """
all:
  children:
    onprem:
      vars: {lab_network: puente-onprem, lab_subnet: 10.89.1.0/24}
      hosts:
        onprem-vpn1: {ansible_host: 10.89.1.5, lab_devices: [/dev/net/tun]}
        onprem-api1: {ansible_host: 10.89.1.21}
"""


def test_only_the_nodes_that_list_the_tun_device_get_it(tmp_path: Path) -> None:
    lab = load(tmp_path, TUN_HOSTS)
    vpn = nodes.run_args(lab.nodes["onprem-vpn1"], "img")
    api = nodes.run_args(lab.nodes["onprem-api1"], "img")
    assert vpn[vpn.index("--device") + 1] == "/dev/net/tun"
    assert "--device" not in api and "--privileged" not in vpn
    # a node without devices keeps the arguments (and so the spec label) it had: it is not recreated
    assert [a for a in vpn if a not in ("--device", "/dev/net/tun")] == [
        a.replace("onprem-api1", "onprem-vpn1").replace("10.89.1.21", "10.89.1.5").replace(":15", ":05")
        for a in api
    ]


@pytest.mark.parametrize("devices", ["[/dev/kvm]", "/dev/net/tun", "[/dev/net/tun, /dev/fuse]"])
def test_other_devices_are_refused(tmp_path: Path, devices: str) -> None:
    with pytest.raises(InventoryError, match="onprem-vpn1`: lab_devices must be a list of"):
        load(tmp_path, TUN_HOSTS.replace("[/dev/net/tun]", devices))


# The WAN between the sites' VPN gateways (issue 14): a gateway gets its site's network and the WAN, and
# forwards; every other node keeps the arguments it had.
WAN_HOSTS = WAN_LAB


def test_a_gateway_has_a_second_interface_on_the_wan_and_forwards(tmp_path: Path) -> None:
    lab = load(tmp_path, WAN_HOSTS)
    assert lab.wan is not None and (lab.wan.network, str(lab.wan.subnet)) == ("puente-wan", "10.89.250.0/24")
    assert lab.gateway_of("onprem") is lab.nodes["onprem-vpn1"]
    assert lab.gateway_of("cloud") is lab.nodes["cloud-vpn1"]
    vpn = nodes.run_args(lab.nodes["onprem-vpn1"], "img", lab.wan)
    networks = [vpn[i + 1] for i, a in enumerate(vpn) if a == "--network"]
    assert networks == ["puente-onprem:ip=10.89.1.5,mac=02:00:0a:59:01:05", "puente-wan:ip=10.89.250.10"]
    assert vpn[vpn.index("--sysctl") + 1] == "net.ipv4.ip_forward=1"
    api = nodes.run_args(lab.nodes["onprem-api1"], "img", lab.wan)
    assert api == nodes.run_args(lab.nodes["onprem-api1"], "img")
    assert "--sysctl" not in api and api[api.index("--ip") + 1] == "10.89.1.21"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("lab_wan_address: 10.89.250.10}", "lab_wan_address 10.89.251.1 is no usable address"),
        ("lab_wan_subnet: 10.89.250.0/24}", "lab_wan_subnet must be an IPv4 CIDR"),
        ("lab_wan_network: puente-wan, ", "no group declares lab_wan_network"),
        ("lab_wan_address: 10.89.250.250}", "10.89.250.10 is already used by `cloud-vpn1`"),
    ],
)
def test_a_bad_wan_is_refused_with_the_host_named(tmp_path: Path, change: str, message: str) -> None:
    broken = {
        "lab_wan_address: 10.89.250.10}": WAN_HOSTS.replace("250.10}", "251.1}"),
        "lab_wan_subnet: 10.89.250.0/24}": WAN_HOSTS.replace("10.89.250.0/24}", "wide}"),
        "lab_wan_network: puente-wan, ": WAN_HOSTS.replace(
            "vars: {lab_wan_network: puente-wan, lab_wan_subnet: 10.89.250.0/24}", "vars: {}"
        ),
        "lab_wan_address: 10.89.250.250}": WAN_HOSTS.replace("10.89.250.250}", "10.89.250.10}"),
    }[change]
    with pytest.raises(InventoryError, match=message.replace("`", ".")):
        load(tmp_path, broken)
