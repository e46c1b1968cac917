"""roles/puente/filter_plugins/puente_monitoring.py: the exporters table turned into firewall rules (role
common's shape, read by its own filter here), allow lists and scrape jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]


mon = load_module(REPO / "roles" / "puente" / "filter_plugins" / "puente_monitoring.py")
fw = load_module(REPO / "roles" / "common" / "filter_plugins" / "common_firewall.py")

EXPORTERS = [
    {"job": "node", "group": "all", "port": 9100},
    {"job": "postgres", "group": "postgresql", "port": 9187},
    {"job": "patroni", "group": "postgresql", "port": "8008", "scheme": "https"},
    {"job": "prometheus", "group": "monitoring", "port": 9090, "operators": True},
]
GROUPS = {
    "all": ["db1", "api1", "mon1"],
    "ungrouped": [],
    "postgresql": ["db1"],
    "api_nodes": ["api1"],
    "monitoring": ["mon1"],
    "onprem": ["db1", "api1", "mon1"],
}
HOSTVARS = {
    "db1": {"ansible_host": "10.0.0.31", "puente_site": "onprem"},
    "api1": {"ansible_host": "10.0.0.21", "puente_site": "onprem"},
    "mon1": {"ansible_host": "10.0.0.53", "puente_site": "onprem"},
}


def test_a_member_opens_its_exporters_to_the_monitoring_hosts_only():
    rules = mon.puente_monitoring_firewall(EXPORTERS, ["postgresql", "onprem"], ["monitoring", "10.9.0.0/24"])
    assert [r["port"] for r in rules] == [8008, 9100, 9187]
    resolved = fw.common_firewall_rules([rules], GROUPS, HOSTVARS)
    assert fw.common_firewall_accepts(resolved, "10.0.0.53", 9187)
    assert fw.common_firewall_accepts(resolved, "10.9.0.7", 9100)
    assert not fw.common_firewall_accepts(resolved, "10.0.0.21", 9187)
    assert not fw.common_firewall_accepts(resolved, "10.0.0.53", 9090)


def test_the_ui_is_open_to_the_operators_too():
    rules = mon.puente_monitoring_firewall(EXPORTERS, ["monitoring"], ["monitoring"], ["192.0.2.0/28"])
    assert rules == [
        {"port": 9090, "proto": "tcp", "from": ["monitoring", "192.0.2.0/28"]},
        {"port": 9100, "proto": "tcp", "from": ["monitoring"]},
    ]


def test_no_monitoring_source_opens_nothing():
    # an empty `from` would mean "any" to the firewall
    assert mon.puente_monitoring_firewall(EXPORTERS, ["postgresql"], []) == []


def test_allow_list_resolves_groups_and_cidrs():
    assert mon.puente_monitoring_cidrs(["monitoring", "10.9.0.1/24"], GROUPS, HOSTVARS) == [
        "10.0.0.53/32",
        "10.9.0.0/24",
    ]
    with pytest.raises(AnsibleFilterError, match="neither a group nor a CIDR"):
        mon.puente_monitoring_cidrs(["nosuchgroup"], GROUPS, HOSTVARS)


def test_scrape_jobs_cover_every_member_with_site_and_node_labels():
    jobs = {j["job_name"]: j for j in mon.puente_scrape_configs(EXPORTERS, GROUPS, HOSTVARS, "/etc/ca.crt")}
    assert [sc["labels"]["node"] for sc in jobs["node"]["static_configs"]] == ["api1", "db1", "mon1"]
    assert jobs["postgres"]["static_configs"] == [
        {"targets": ["10.0.0.31:9187"], "labels": {"site": "onprem", "node": "db1"}}
    ]
    assert jobs["patroni"]["scheme"] == "https"
    assert jobs["patroni"]["tls_config"] == {"ca_file": "/etc/ca.crt"}


def test_a_row_may_drop_metrics_nobody_reads():
    row = {"job": "etcd", "group": "postgresql", "port": 2381, "drop": "grpc_server_.*"}
    (job,) = mon.puente_scrape_configs([row], GROUPS, HOSTVARS)
    assert job["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": "grpc_server_.*", "action": "drop"}
    ]


def test_a_group_without_members_makes_no_job():
    jobs = mon.puente_scrape_configs([{"job": "dns", "group": "dns", "port": 8081}], GROUPS, HOSTVARS)
    assert jobs == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"job": "x", "group": "all"}, "needs job, group and port"),
        ({"job": "x", "group": "all", "port": 0}, "1-65535"),
        ({"job": "x", "group": "all", "port": 1, "scheme": "ftp"}, "http or https"),
    ],
)
def test_bad_rows_are_refused(row: dict, message: str):
    with pytest.raises(AnsibleFilterError, match=message):
        mon.puente_monitoring_firewall([row], [], ["monitoring"])


def test_https_without_a_ca_is_refused():
    with pytest.raises(AnsibleFilterError, match="without a CA file"):
        mon.puente_scrape_configs(EXPORTERS, GROUPS, HOSTVARS, "")
