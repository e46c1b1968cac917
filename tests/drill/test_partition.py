"""Issue 5's partition fault on the two-site lab: the on-prem database members are cut off from every other
node while the on-prem API stays up. The on-prem API must answer 503 + Retry-After (never a 500, never a
write it cannot keep) until Patroni promotes the cloud member, then write to it across the WAN; when the
partition heals the old leader must come back as a replica (Patroni 3.0.2 needed a fix for that: see
roles/postgresql/README.md)."""

from __future__ import annotations

import pytest
from acceptance import (
    assert_failed_over_and_fenced,
    assert_no_duplicate_effect,
    assert_nothing_lost,
    run_short,
)

from puente.drill import scenarios

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.destructive]


@pytest.fixture(scope="module")
def partition_report(lab) -> dict:
    return run_short(scenarios.db_partition)


def test_nothing_acknowledged_is_lost(partition_report):
    assert_nothing_lost(partition_report)


def test_no_duplicate_effect(partition_report):
    assert_no_duplicate_effect(partition_report)


def test_writes_were_refused_with_503_never_500(partition_report):
    errors = partition_report["errors"]["attempts"]
    assert errors.get("http_500", 0) == 0, errors
    assert errors.get("http_503", 0) > 0, f"no write was refused while the leader was cut off: {errors}"


def test_the_leader_moved_and_the_old_one_rejoined_without_split_brain(partition_report):
    assert_failed_over_and_fenced(partition_report)
