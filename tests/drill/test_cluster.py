"""cluster.handover_plan: which member a drill hands the leader to before it measures the designed state
(the leader on the primary site). Patroni 3.0.2 answers a switchover to anyone but the synchronous
standby with HTTP 412 in synchronous_mode (api.py, is_failover_possible): CI once failed that way."""

from __future__ import annotations

import pytest

from puente.drill.cluster import handover_plan

SITES = {"onprem-db1": "onprem", "onprem-db2": "onprem", "cloud-db1": "cloud"}


def member(name: str, role: str, state: str = "streaming") -> dict[str, str]:
    return {"name": name, "role": role, "state": "running" if role == "leader" else state}


def test_nothing_to_do_when_the_leader_is_on_the_site():
    view = [
        member("onprem-db1", "leader"),
        member("onprem-db2", "sync_standby"),
        member("cloud-db1", "replica"),
    ]
    assert handover_plan(view, SITES, "onprem", synchronous_mode=True) == (None, "")


def test_synchronous_mode_hands_over_to_the_synchronous_standby_only():
    view = [
        member("cloud-db1", "leader"),
        member("onprem-db1", "replica"),
        member("onprem-db2", "sync_standby"),
    ]
    assert handover_plan(view, SITES, "onprem", synchronous_mode=True) == ("cloud-db1", "onprem-db2")
    # without synchronous_mode the first healthy member of the site does
    assert handover_plan(view, SITES, "onprem", synchronous_mode=False) == ("cloud-db1", "onprem-db1")


@pytest.mark.parametrize(
    ("view", "synchronous", "message"),
    [
        ([member("cloud-db1", "replica"), member("onprem-db1", "replica")], True, "no Patroni leader"),
        # the old leader still rejoining, no synchronous standby yet: a switchover would be a 412
        (
            [
                member("cloud-db1", "leader"),
                member("onprem-db1", "replica", "starting"),
                member("onprem-db2", "replica"),
            ],
            True,
            "synchronous standby now: none",
        ),
        # a sync standby that is not healthy is none
        (
            [member("cloud-db1", "leader"), member("onprem-db1", "sync_standby", "starting")],
            True,
            "synchronous standby now: none",
        ),
        (
            [member("cloud-db1", "leader"), member("onprem-db1", "replica", "starting")],
            False,
            "no healthy replica",
        ),
    ],
)
def test_no_member_to_take_the_leader_is_a_clear_refusal(view, synchronous, message):
    with pytest.raises(ValueError, match=message):
        handover_plan(view, SITES, "onprem", synchronous_mode=synchronous)
