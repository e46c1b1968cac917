"""The tunnel drills' own pieces, without a lab: the write gap, whether Patroni noticed, the verdict of a
fault the database must not notice, what the drill reads from the inventory (gateways, tunnels, the WAN),
the blackhole that goes with `site-failover --fault tunnel`, and the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from puente.drill import cli, report, scenarios, topology
from puente.drill.attempts import WRITE, Attempt


def write(started: float, ended: float, *, error: str | None = None, status: int | None = None) -> Attempt:
    return Attempt(started, ended, WRITE, 1, 1, status=status if error else 201, error=error)


def test_the_write_gap_is_the_longest_time_without_an_acknowledgement_and_its_failures():
    log = [
        write(9.0, 10.1),
        write(10.2, 10.4),
        write(10.5, 13.5, error="timeout"),
        write(13.6, 14.0, error="http_503", status=503),
        write(14.1, 18.4),  # acknowledged 8 s after the previous one
        write(18.5, 18.6),
    ]
    gap = report.write_gap(log, 10.0, 20.0)
    assert gap == {
        "seconds": 8.0,
        "from": 10.4,
        "to": 18.4,
        "failed_attempts": 2,
        "failed_by_kind": {"http_503": 1, "timeout": 1},
    }
    # nothing acknowledged at all: the whole window
    assert report.write_gap([write(11, 12, error="reset")], 10.0, 20.0)["seconds"] == 10.0
    # a gap at the end of the window counts as much as one inside it
    assert report.write_gap([write(10, 10.5)], 10.0, 20.0)["from"] == 10.5


def member(name: str, role: str, timeline: int = 3, state: str = "running") -> dict[str, Any]:
    return {"name": name, "role": role, "state": state, "timeline": timeline}


BEFORE = [
    member("onprem-db1", "leader"),
    member("cloud-db1", "sync_standby"),
    member("onprem-db2", "replica"),
]


def test_patroni_did_not_notice():
    noticed = report.patroni_noticed(BEFORE, BEFORE, ["onprem-db1"])
    assert noticed["leader_unchanged"] and noticed["sync_standby_unchanged"]
    assert noticed["timeline_before"] == noticed["timeline_after"] == [3]


@pytest.mark.parametrize(
    ("after", "seen", "why"),
    [
        ([member("onprem-db1", "replica", 4), member("cloud-db1", "leader", 4)], [], "the leader moved"),
        ([member("onprem-db1", "leader", 4), member("cloud-db1", "sync_standby", 4)], [], "a new timeline"),
        (BEFORE, ["onprem-db1", "cloud-db1"], "another member answered /primary during the fault"),
        ([member("cloud-db1", "sync_standby")], [], "no leader after"),
    ],
)
def test_patroni_noticed(after, seen, why):
    assert not report.patroni_noticed(BEFORE, after, seen)["leader_unchanged"], why


def test_no_failover_verdict_fails_on_a_5xx_or_a_leader_change_and_reports_the_sync_standby():
    quiet: dict[str, Any] = {
        "errors": {"attempts": {"timeout": 4}},
        "cluster_before": BEFORE,
        "cluster_after": [member("onprem-db1", "leader"), member("onprem-db2", "sync_standby")],
        "primaries_seen_during_fault": ["onprem-db1"],
    }
    checks = {c["name"]: c for c in scenarios.no_failover_verdict(quiet)}
    assert checks["no_5xx"]["ok"] and checks["no_database_failover"]["ok"]
    assert "sync standby ['cloud-db1'] -> ['onprem-db2']" in checks["no_database_failover"]["detail"]
    assert quiet["patroni"]["sync_standby_unchanged"] is False
    loud = {**quiet, "errors": {"attempts": {"http_503": 2, "http_502": 1, "http_429": 3}}}
    loud["cluster_after"] = [member("cloud-db1", "leader", 4), member("onprem-db1", "replica", 4)]
    checks = {c["name"]: c for c in scenarios.no_failover_verdict(loud)}
    assert not checks["no_5xx"]["ok"] and "3 answers 5xx" in checks["no_5xx"]["detail"]
    assert not checks["no_database_failover"]["ok"]


INVENTORY = {
    "all": {
        "children": {
            "lab": {
                "vars": {"lab_wan_network": "puente-wan", "lab_wan_subnet": "10.89.250.0/24"},
                "children": {
                    "onprem": {
                        "vars": {"lab_network": "puente-onprem", "lab_subnet": "10.89.1.0/24"},
                        "hosts": {
                            "onprem-vpn1": {"ansible_host": "10.89.1.5", "lab_wan_address": "10.89.250.10"},
                            "onprem-db1": {"ansible_host": "10.89.1.31"},
                            "onprem-dns1": {"ansible_host": "10.89.1.53"},
                        },
                    },
                    "cloud": {
                        "vars": {"lab_network": "puente-cloud", "lab_subnet": "10.89.2.0/24"},
                        "hosts": {
                            "cloud-vpn1": {"ansible_host": "10.89.2.5", "lab_wan_address": "10.89.250.250"},
                            "cloud-db1": {"ansible_host": "10.89.2.31"},
                        },
                    },
                    "witness": {
                        "vars": {"lab_network": "puente-witness", "lab_subnet": "10.89.3.0/24"},
                        "hosts": {"witness1": {"ansible_host": "10.89.3.10"}},
                    },
                },
            },
            "dns": {"hosts": {"onprem-dns1": None}},
            "postgresql": {"hosts": {"onprem-db1": None, "cloud-db1": None}},
        }
    }
}


@pytest.fixture
def topo(tmp_path: Path) -> topology.Topology:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(INVENTORY))
    return topology.load([path])


def test_the_drill_reads_the_gateways_the_wan_and_the_committed_tunnels(topo: topology.Topology):
    assert topo.wan_network == "puente-wan"
    assert topo.vpn_gateways == {
        "onprem": topology.VpnGateway("onprem-vpn1", "onprem", "10.89.250.10"),
        "cloud": topology.VpnGateway("cloud-vpn1", "cloud", "10.89.250.250"),
    }
    # vpn_tunnels come from the lab's overrides (the committed file): tunnel1 first, the preferred one
    assert [t.name for t in topo.tunnels] == ["tunnel1", "tunnel2"]
    assert all(t.outside.startswith("10.89.250.") for t in topo.tunnels)
    assert topo.through_tunnels("onprem") == ["cloud"]
    assert topo.through_tunnels("witness") == []


def test_the_tunnel_fault_blackholes_only_the_peers_outside_the_tunnels(topo: topology.Topology):
    full = scenarios.wan_cut(topo)
    assert sorted(full.peers) == ["10.89.2.0/24", "10.89.3.0/24"]
    rest = scenarios.wan_cut(topo, tunnel_peers=False)
    assert rest.peers == ["10.89.3.0/24"] and rest.cut_clients and rest.exempt == ["10.89.1.53"]
    assert "10.89.2.0/24" not in rest.ruleset()


@pytest.mark.parametrize(
    ("entries", "message"),
    [({"tunnel": 1}, "outside address"), ("10.0.0.1", "outside address")],
)
def test_malformed_vpn_tunnels_are_refused(entries, message):
    with pytest.raises(topology.TopologyError, match=message):
        topology._tunnels([entries])


def test_a_lab_without_a_wan_refuses_the_tunnel_drills_before_touching_anything(tmp_path: Path):
    inv = yaml.safe_load(yaml.safe_dump(INVENTORY))
    lab = inv["all"]["children"]["lab"]
    del lab["vars"]
    for site in lab["children"].values():
        for host in site["hosts"].values():
            host.pop("lab_wan_address", None)
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    topo = topology.load([path])
    with pytest.raises(scenarios.preflight.PreflightError) as err:
        scenarios._vpn(topo)
    assert "no VPN gateway" in str(err.value) and "no WAN" in str(err.value)


def test_the_command_line():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.register(sub)
    assert parser.parse_args(["drill", "site-failover"]).fault == "blackhole"
    assert parser.parse_args(["drill", "site-failover", "--fault", "tunnel"]).fault == "tunnel"
    with pytest.raises(SystemExit):
        parser.parse_args(["drill", "site-failover", "--fault", "bridge"])
    args = parser.parse_args(["drill", "tunnel-failover", "--hold", "10"])
    assert args.drill == "tunnel-failover" and cli._options(args).hold == 10
    with pytest.raises(scenarios.preflight.PreflightError, match="--fault must be one of"):
        scenarios.site_failover(
            topology.Topology({}, {}, {}, "", [], {}, [], {}), scenarios.DrillOptions(), "x"
        )


def test_the_drill_waits_for_a_watch_bounded(monkeypatch: pytest.MonkeyPatch):
    """run_drill's extensions of the hold and of the load (FaultWatch.may_lift / recovered): polled once a
    second, never longer than the timeout, the seconds waited returned (they go to the report)."""
    now = [100.0]
    monkeypatch.setattr(scenarios.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    answers = iter([False, False, True])
    assert scenarios._wait_for("x", lambda: next(answers), 90, lambda: now[0]) == 2.0
    assert scenarios._wait_for("x", lambda: True, 90, lambda: now[0]) == 0.0
    assert scenarios._wait_for("x", lambda: False, 5, lambda: now[0]) == 5.0
