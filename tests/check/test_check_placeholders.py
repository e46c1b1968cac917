"""Rule 3: documentation addresses, documentation domains and placeholder zone ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from check_helpers import (
    OVERRIDES,
    check,
    check_lab,
    copy_filled,
    copy_lab,
    edit_yaml,
    lab_hosts,
    one,
    run_check,
)

from puente.check.rules.placeholders import phrases
from puente.lab import inventory as lab_inventory


def test_a_documentation_address_in_ansible_host_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    edit_yaml(lab / "hosts.yml", lambda d: lab_hosts(d)["onprem-api1"].update(ansible_host="192.0.2.21"))
    proc = run_check("-i", lab)
    assert proc.returncode == 2, proc.stdout
    assert (
        "[placeholder] " in proc.stdout and "hosts.yml:" in proc.stdout and " host onprem-api1" in proc.stdout
    )
    assert "ansible_host 192.0.2.21 is a documentation address (RFC 5737 TEST-NET-1)" in proc.stdout


def test_a_documentation_network_in_a_variable_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    edit_yaml(OVERRIDES(lab), lambda d: d["dns_client_cidrs"].append("2001:db8:10::/48"))
    finding = one(check_lab(lab), "dns_client_cidrs[3]")
    assert "group_vars/lab/overrides.yml:" in finding
    hosts = len(lab_inventory.load().nodes)  # every lab node
    network = "2001:db8:10::/48 is a documentation network (RFC 3849)"
    assert f"{network} (for {hosts} host(s): cloud-api1" in finding


def test_a_documentation_domain_in_a_url_is_refused(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    assert check(filled) == []
    edit_yaml(
        filled / "group_vars" / "api_nodes.yml",
        lambda d: d.update(
            api_broker_url="amqp://{{ puente_mq_user }}@mq.example.org:5672/{{ puente_mq_vhost }}"
        ),
    )
    finding = one(check(filled), "api_broker_url")
    assert "mq.example.org is in example.org, a documentation domain (RFC 2606)" in finding


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("198.51.100.7", "", "198.51.100.7 is a documentation address (RFC 5737 TEST-NET-2)"),
        ("203.0.113.0/24", "", "203.0.113.0/24 is a documentation network (RFC 5737 TEST-NET-3)"),
        ("192.0.0.0/16", "", "192.0.0.0/16 is a documentation network (RFC 5737 TEST-NET-1)"),  # contains it
        ("https://[2001:db8::1]:8443/x", "", "2001:db8::1 is a documentation address (RFC 3849)"),
        ("http://api.example.com/readyz", "", "api.example.com is in example.com"),
        ("dev.puente.example.com", "", "dev.puente.example.com is in example.com"),
        ("db.internal.test:5432", "", "db.internal.test is in internal.test"),
        ("Z0123456789PRODZONE", "puente:edge.hostedZoneId", "is a placeholder Route 53 hosted zone id"),
        ("ZEXAMPLE123", "", "is a placeholder Route 53 hosted zone id"),
        ("Z0000000000", "hosted_zone_id", "is a placeholder Route 53 hosted zone id"),
    ],
)
def test_placeholders_are_recognised(text: str, key: str, expected: str) -> None:
    assert any(expected in what for _, what in phrases(text, key)), phrases(text, key)


@pytest.mark.parametrize(
    "text",
    [
        "10.89.1.10",
        "postgresql://puente_api@10.89.1.10:5432/puente",
        "puente.lab",
        "Z1D633PJN98FT9",
        "192.0.3.1",
        "1.31",
        "2001:db9::1",
        "api.example.community",
        "/etc/ssl/api.example.com.pem",
    ],
)
def test_real_values_are_not_placeholders(text: str) -> None:
    assert phrases(text, "hosted_zone_id" if text.startswith("Z") else "") == []
