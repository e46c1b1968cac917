"""Role `etcd`: the static etcd 3.4 cluster Patroni uses as its DCS (group `etcd`)."""

from __future__ import annotations

import json

import pytest

from puente.lab import inventory

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

CLIENT_PORT, PEER_PORT = 2379, 2380


LAB = inventory.load()
MEMBERS = sorted(LAB.groups.get("etcd", []))


def address(host: str) -> str:
    return str(LAB.nodes[host].ip)


# Clients need a certificate the CA signed: on a member, the member's own (roles/etcd, TLS).
TLS_DIR = "/etc/etcd/tls"
CLIENT_TLS = f"--cacert={TLS_DIR}/ca.crt --cert={TLS_DIR}/member.crt --key={TLS_DIR}/member.key"
ETCDCTL = f"ETCDCTL_API=3 etcdctl {CLIENT_TLS} --endpoints=https://127.0.0.1:2379"
CURL_TLS = f"--cacert {TLS_DIR}/ca.crt --cert {TLS_DIR}/member.crt --key {TLS_DIR}/member.key"


def etcdctl(node, host: str, *args: str) -> str:
    return node(host).check_output(ETCDCTL + " %s" * len(args), *args)


def test_the_inventory_has_an_odd_etcd_group() -> None:
    assert MEMBERS, "inventory group 'etcd' is missing or empty"
    assert len(MEMBERS) % 2 == 1, f"an even group {MEMBERS} tolerates no more failures than one member fewer"


@pytest.mark.parametrize("host", MEMBERS)
def test_every_member_is_healthy(node, host) -> None:
    health = json.loads(etcdctl(node, host, "endpoint", "health", "--cluster", "--write-out=json"))
    assert sorted(h["endpoint"] for h in health if h["health"]) == sorted(
        f"https://{address(m)}:{CLIENT_PORT}" for m in MEMBERS
    ), health


def test_members_are_exactly_the_group(node) -> None:
    members = json.loads(etcdctl(node, MEMBERS[0], "member", "list", "--write-out=json"))["members"]
    assert sorted(m["name"] for m in members) == MEMBERS
    for m in members:
        assert m["peerURLs"] == [f"https://{address(m['name'])}:{PEER_PORT}"]
        assert m["clientURLs"] == [f"https://{address(m['name'])}:{CLIENT_PORT}"]


def test_one_raft_leader(node) -> None:
    status = json.loads(etcdctl(node, MEMBERS[0], "endpoint", "status", "--cluster", "--write-out=json"))
    leaders = {s["Status"]["leader"] for s in status}
    assert len(status) == len(MEMBERS) and len(leaders) == 1, status


@pytest.mark.parametrize("host", MEMBERS)
def test_service_data_dir_and_no_package_default_cluster(node, host) -> None:
    assert node(host).service("etcd").is_enabled
    assert node(host).service("etcd").is_running
    assert node(host).file("/var/lib/etcd/puente/member").is_directory
    assert not node(host).file("/var/lib/etcd/default").exists


@pytest.mark.parametrize("host", MEMBERS)
def test_listens_on_the_site_address_and_loopback_only(node, host) -> None:
    assert node(host).socket(f"tcp://{address(host)}:{PEER_PORT}").is_listening
    assert node(host).socket(f"tcp://{address(host)}:{CLIENT_PORT}").is_listening
    assert node(host).socket(f"tcp://127.0.0.1:{CLIENT_PORT}").is_listening
    assert not node(host).socket(f"tcp://0.0.0.0:{CLIENT_PORT}").is_listening


@pytest.mark.parametrize("host", MEMBERS)
def test_v2_api_is_off(node, host) -> None:
    status = node(host).check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' {CURL_TLS} https://127.0.0.1:2379/v2/keys"
    )
    assert status == "404"


@pytest.mark.parametrize("host", MEMBERS)
def test_refuses_clients_and_peers_without_a_certificate(node, host) -> None:
    """Client-certificate authentication on both ports: the TLS handshake fails without a certificate the CA
    signed (curl exit 35, 55 or 56), and nothing answers in plain HTTP."""
    ca = f"--cacert {TLS_DIR}/ca.crt"
    for port in (CLIENT_PORT, PEER_PORT):
        url = f"https://{address(host)}:{port}/version"
        assert node(host).run(f"curl -sf -m 5 {ca} {url}").rc in (35, 55, 56), url
        assert node(host).run(f"curl -sf -m 5 http://{address(host)}:{port}/version").rc != 0, url
    assert node(host).run(f"curl -sf -m 5 {CURL_TLS} https://{address(host)}:{CLIENT_PORT}/version").rc == 0


def test_patroni_keys_are_in_the_v3_keyspace(node) -> None:
    keys = etcdctl(node, MEMBERS[0], "get", "--prefix", "--keys-only", "/service/puente/")
    assert "/service/puente/leader" in keys.split()
