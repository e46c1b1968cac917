"""Issue 5's partition fault on the two-site lab: the on-prem database members are cut off from every other
node while the on-prem API stays up. The on-prem API must answer 503 + Retry-After (never a 500, never a
write it cannot keep) until Patroni promotes the cloud member, then write to it across the WAN; when the
partition heals the old leader must come back as a replica (Patroni 3.0.2 needed a fix for that: see
roles/postgresql/README.md)."""

from __future__ import annotations

import json

import pytest

from puente.drill import report, scenarios, topology
from puente.drill.client import LoadShape

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.destructive]


@pytest.fixture(scope="module")
def partition_report(lab) -> dict:
    topo = topology.load()
    if not topo.has_site(topology.SECONDARY_SITE):
        pytest.skip(f"inventories/lab/hosts.yml has no `cloud` site: sites are {sorted(topo.sites)}")
    opts = scenarios.DrillOptions(
        warmup=5,
        hold=25,
        after=15,
        shape=LoadShape(workers=3, write_ratio=0.3),
        thresholds=report.Thresholds(rto_read=5, rto_write=15),
    )
    result = scenarios.db_partition(topo, opts)
    print(report.table(result))
    print(json.dumps({k: result[k] for k in ("rto", "writes", "duplicate_effects", "errors")}, indent=1))
    return result


def test_nothing_acknowledged_is_lost(partition_report):
    writes = partition_report["writes"]
    assert writes["acknowledged"] > 0, "the drill acknowledged no write: nothing was measured"
    assert writes["lost"] == 0, writes["lost_ids"]
    assert writes["unverified"] == 0, writes["unverified_ids"]


def test_no_duplicate_effect(partition_report):
    dups = partition_report["duplicate_effects"]
    assert dups["db_checked"], "the database could not be checked for duplicates"
    assert dups["total"] == 0, dups


def test_writes_were_refused_with_503_never_500(partition_report):
    errors = partition_report["errors"]["attempts"]
    assert errors.get("http_500", 0) == 0, errors
    assert errors.get("http_503", 0) > 0, f"no write was refused while the leader was cut off: {errors}"


def test_the_leader_moved_and_the_old_one_rejoined_without_split_brain(partition_report):
    db = partition_report["database"]
    assert db["failed_over"], f"the leader never moved off {db['old_leader']}"
    assert db["leaders_now"] == 1 and db["max_leaders_seen_during_fault"] == 1, db
    assert db["fenced"], db
