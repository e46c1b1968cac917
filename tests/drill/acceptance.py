"""What the two-site acceptance drills (site failover, database partition) share: the short run the suite
affords and the promises every one of them must keep."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from puente.drill import report, scenarios, topology
from puente.drill.client import LoadShape

Drill = Callable[[topology.Topology, scenarios.DrillOptions], dict[str, Any]]


def run_short(drill: Drill) -> dict[str, Any]:
    """Run ``drill`` on the two-site lab, short: enough traffic on both sides of the fault for each figure."""
    topo = topology.load()
    if not topo.has_site(topology.SECONDARY_SITE):
        pytest.skip(
            "inventories/lab/hosts.yml has no `cloud` site yet: the two-site lab (issue 5) is not wired, "
            f"sites are {sorted(topo.sites)}"
        )
    opts = scenarios.DrillOptions(
        warmup=5,
        hold=25,
        after=15,
        shape=LoadShape(workers=3, write_ratio=0.3),
        thresholds=report.Thresholds(rto_read=5, rto_write=15),
    )
    result = drill(topo, opts)
    print(report.table(result))
    print(json.dumps({k: result[k] for k in ("rto", "writes", "duplicate_effects", "errors")}, indent=1))
    return result


def assert_nothing_lost(result: dict[str, Any]) -> None:
    writes = result["writes"]
    assert writes["acknowledged"] > 0, "the drill acknowledged no write: nothing was measured"
    assert writes["lost"] == 0, writes["lost_ids"]
    assert writes["unverified"] == 0, writes["unverified_ids"]


def assert_no_duplicate_effect(result: dict[str, Any]) -> None:
    dups = result["duplicate_effects"]
    assert dups["db_checked"], "the database could not be checked for duplicates"
    assert dups["total"] == 0, dups


def assert_failed_over_and_fenced(result: dict[str, Any]) -> None:
    db = result["database"]
    assert db["failed_over"], f"the leader never moved off {db['old_leader']}"
    assert db["leaders_now"] == 1 and db["max_leaders_seen_during_fault"] == 1, db
    # a member that is not back: its journal's tail (cluster.diagnose) says why
    assert db["fenced"], {**db, "diagnosis": result.get("cluster_diagnosis")}
