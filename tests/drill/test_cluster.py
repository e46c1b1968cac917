"""cluster.handover_plan: which member a drill hands the leader to before it measures the designed state
(the leader on the primary site). Patroni 3.0.2 answers a switchover to anyone but the synchronous
standby with HTTP 412 in synchronous_mode (api.py, is_failover_possible): CI once failed that way.
cluster.unsettled and telling_lines: which members a drill explains when they are not back, and what of
their journal it keeps."""

from __future__ import annotations

import pytest

from puente.drill.cluster import handover_plan, telling_lines, unsettled
from puente.drill.topology import DbMember

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


MEMBERS = [DbMember(n, site, f"10.0.0.{i}") for i, (n, site) in enumerate(SITES.items())]


def test_unsettled_names_members_neither_leader_nor_streaming_and_missing_ones():
    view = [
        member("cloud-db1", "leader"),
        member("onprem-db1", "replica", state="starting"),
    ]
    assert unsettled(view, MEMBERS) == ["onprem-db1", "onprem-db2"]
    view.append(member("onprem-db2", "replica", state="running"))
    view[1] = member("onprem-db1", "sync_standby", state="running")
    assert unsettled(view, MEMBERS) == []


# A member's journal as a drill left it (session 19's repro, shortened): connection chatter, etcd retries
# and a traceback around the lines that say what happened.
JOURNAL = """\
2026-12-06 20:10:05,423 INFO: demoting self because DCS is not accessible and I was a leader
2026-12-06 20:10:05.435 UTC [12309] LOG:  received fast shutdown request
2026-12-06 20:10:06,001 ERROR: Request to server https://10.89.2.31:2379 failed: MaxRetryError(...)
2026-12-06 20:10:06,001 INFO: Reconnection allowed, looking for another server.
2026-12-06 20:10:06.100 UTC [13001] LOG:  connection received: host=10.89.1.10 port=47346
2026-12-06 20:10:06,200 WARNING: Traceback (most recent call last):
  File "/usr/lib/python3.11/socketserver.py", line 691, in process_request_thread
    self.finish_request(request, client_address)
2026-12-06 20:10:57.878 P00   INFO: archive-push command end: completed successfully (60037ms)
2026-12-06 20:10:57.903 UTC [12309] LOG:  database system is shut down
2026-12-06 20:10:59,881 INFO: running pg_rewind from cloud-db1
2026-12-06 20:11:02,001 INFO: Lock owner: cloud-db1; I am onprem-db1
2026-12-06 20:11:03,509 INFO: restarting after failure in progress
2026-12-06 20:11:03.795 UTC [24825] DETAIL:  Consistent recovery state has not been yet reached.
2026-12-06 20:11:05,461 INFO: restarting after failure in progress
2026-12-06 20:11:05.832 UTC [24828] DETAIL:  Consistent recovery state has not been yet reached.
"""


def test_telling_lines_keep_what_the_member_did_in_order_each_message_once():
    assert telling_lines(JOURNAL, 40) == [
        "2026-12-06 20:10:05,423 INFO: demoting self because DCS is not accessible and I was a leader",
        "2026-12-06 20:10:05.435 UTC [12309] LOG:  received fast shutdown request",
        "2026-12-06 20:10:57.878 P00   INFO: archive-push command end: completed successfully (60037ms)",
        "2026-12-06 20:10:57.903 UTC [12309] LOG:  database system is shut down",
        "2026-12-06 20:10:59,881 INFO: running pg_rewind from cloud-db1",
        "2026-12-06 20:11:05,461 INFO: restarting after failure in progress",
        "2026-12-06 20:11:05.832 UTC [24828] DETAIL:  Consistent recovery state has not been yet reached.",
    ]
    assert telling_lines(JOURNAL, 2) == telling_lines(JOURNAL, 40)[-2:]
