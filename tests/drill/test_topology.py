"""What the drill derives from the lab inventory: the WAN cut of the on-prem site (its subnet, the other
sites as peers, the DNS node standing outside the site) and which site owns which gateway address."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from puente.drill import scenarios, topology

INVENTORY = {
    "all": {
        "children": {
            "onprem": {
                "vars": {"lab_network": "puente-onprem", "lab_subnet": "10.89.1.0/24"},
                "hosts": {
                    "onprem-edge1": {"ansible_host": "10.89.1.10"},
                    "onprem-api1": {"ansible_host": "10.89.1.21"},
                    "onprem-db1": {"ansible_host": "10.89.1.31"},
                    "onprem-dns1": {"ansible_host": "10.89.1.53"},
                },
            },
            "cloud": {
                "vars": {"lab_network": "puente-cloud", "lab_subnet": "10.89.2.0/24"},
                "hosts": {
                    "cloud-edge1": {"ansible_host": "10.89.2.10"},
                    "cloud-api1": {"ansible_host": "10.89.2.21"},
                    "cloud-db1": {"ansible_host": "10.89.2.31"},
                    "cloud-sqs1": {"ansible_host": "10.89.2.41"},
                },
            },
            "witness": {
                "vars": {"lab_network": "puente-witness", "lab_subnet": "10.89.3.0/24"},
                "hosts": {"witness1": {"ansible_host": "10.89.3.10"}},
            },
            "gateways": {"hosts": {"onprem-edge1": None, "cloud-edge1": None}},
            "api_nodes": {"hosts": {"onprem-api1": None, "cloud-api1": None}},
            "postgresql": {"hosts": {"onprem-db1": None, "cloud-db1": None}},
            "dns": {"hosts": {"onprem-dns1": None}},
            "sqs": {"hosts": {"cloud-sqs1": None}},
            "monitoring": {"hosts": {"onprem-dns1": None, "cloud-sqs1": None}},
        }
    }
}


@pytest.fixture
def topo(tmp_path: Path) -> topology.Topology:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(INVENTORY))
    return topology.load([path])


def test_the_cut_isolates_onprem_from_every_other_site(topo):
    cut = scenarios.wan_cut(topo)
    assert cut.isolate == "10.89.1.0/24"
    assert sorted(cut.peers) == ["10.89.2.0/24", "10.89.3.0/24"]
    assert cut.exempt == ["10.89.1.53"]
    rules = cut.ruleset()
    assert "table inet puente_wan" in rules and "table bridge puente_wan" in rules


def test_gateways_tell_which_site_answered(topo):
    assert topo.edges == {"10.89.1.10": "onprem", "10.89.2.10": "cloud"}
    assert topo.dns_servers == ["10.89.1.53"]
    assert topo.api_name == "api.puente.lab"
    assert sorted(m.name for m in topo.db_members) == ["cloud-db1", "onprem-db1"]
    assert topo.api_nodes == {"onprem": ["onprem-api1"], "cloud": ["cloud-api1"], "witness": []}
    assert topo.witness_nodes == ["witness1"]
    assert topo.sqs_nodes == ["cloud-sqs1"]


def test_a_dns_in_another_site_is_not_exempted(tmp_path: Path):
    inv = yaml.safe_load(yaml.safe_dump(INVENTORY))
    inv["all"]["children"]["dns"] = {"hosts": {"witness1": None}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    assert scenarios.wan_cut(topology.load([path])).exempt == []


def test_the_monitoring_nodes_are_where_the_drill_reads_the_alerts(topo: topology.Topology):
    assert sorted(topo.monitoring_nodes) == ["cloud-sqs1", "onprem-dns1"]
