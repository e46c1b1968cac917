"""The catalogue's policy helpers (audit/controls/audit_policy.py): nftables JSON parsing, ports per role."""

from __future__ import annotations

import json

from puente_test_support import load_module

from puente.shell import ROOT

_PATH = ROOT / "audit" / "controls" / "audit_policy.py"
policy = load_module(_PATH)


def rule(chain: str, *expr: dict) -> dict:
    return {
        "rule": {"family": "inet", "table": "puente_filter", "chain": chain, "handle": 7, "expr": list(expr)}
    }


def dport(proto: str, right: object) -> dict:
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": right}}


RULESET = json.dumps(
    {
        "nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {
                "chain": {
                    "family": "inet",
                    "table": "puente_filter",
                    "name": "input",
                    "hook": "input",
                    "policy": "drop",
                }
            },
            {
                "chain": {
                    "family": "inet",
                    "table": "puente_filter",
                    "name": "output",
                    "hook": "output",
                    "policy": "accept",
                }
            },
            rule(
                "input",
                {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
                {"accept": None},
            ),
            rule("input", dport("tcp", 22), {"accept": None}),
            rule(
                "input",
                {
                    "match": {
                        "op": "==",
                        "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                        "right": {"set": ["10.89.1.21", "10.89.1.22"]},
                    }
                },
                dport("tcp", 8080),
                {"accept": None},
            ),
            rule("input", dport("tcp", {"set": [80, 443]}), {"accept": None}),
            rule("input", dport("tcp", {"range": [8000, 8010]}), {"accept": None}),
            rule("input", dport("udp", 53), {"drop": None}),
            rule("output", dport("tcp", 9999), {"accept": None}),
        ]
    }
)


def test_input_chains_and_their_policy():
    chains = policy.input_chains(RULESET)
    assert [(c["name"], c["policy"]) for c in chains] == [("input", "drop")]


def test_accepted_ports_reads_single_ports_sets_and_ranges_of_input_accept_rules_only():
    found = {(proto, lo, hi) for proto, lo, hi, _ in policy.accepted_ports(RULESET)}
    assert found == {
        ("tcp", 22, 22),
        ("tcp", 8080, 8080),
        ("tcp", 80, 80),
        ("tcp", 443, 443),
        ("tcp", 8000, 8010),
    }


def test_allowed_ports_are_the_union_of_the_host_groups():
    allowed = policy.allowed_ports(["onprem", "gateways", "loadbalancers"])
    # ssh; the gateway; the load balancer's PostgreSQL routes; the exporters of those groups (node, nginx,
    # HAProxy), which the firewall opens to the monitoring hosts only
    assert allowed == {
        ("tcp", 22),
        ("tcp", 80),
        ("tcp", 443),
        ("tcp", 5432),
        ("tcp", 5433),
        ("tcp", 9100),
        ("tcp", 9113),
        ("tcp", 8405),
    }
    assert ("tcp", 8080) not in allowed
