"""puente.drill.alerts without a lab: the receiver's records (the shape roles/monitoring's
puente-alert-receiver writes) placed on the drill's clock, the verdict on what fired and resolved, and the
bounded wait for resolution (a fake receiver and a fake clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from puente.drill import alerts, preflight, scenarios
from puente.shell import CommandError

T0 = 1_796_455_285.0
FAULT, RESTORE = 5.0, 35.0
ZERO = "0001-01-01T00:00:00Z"


def stamp(t: float) -> str:
    return datetime.fromtimestamp(T0 + t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(status: str, labels: dict[str, str], fired: float, received: float, ended: float | None = None):
    """One line of the receiver's log, as puente-alert-receiver writes it."""
    return {
        "received_at": stamp(received),
        "receiver": "puente",
        "group_status": status,
        "status": status,
        "alertname": labels["alertname"],
        "labels": labels,
        "annotations": {"summary": f"{labels['alertname']} summary"},
        "starts_at": stamp(fired),
        "ends_at": stamp(ended) if ended is not None else ZERO,
        "fingerprint": "f",
    }


DOWN = {"alertname": "PuenteSiteDown", "severity": "page", "site": "onprem", "monitor": "cloud"}
LEADER = {
    "alertname": "PuenteDatabaseLeaderChanged",
    "severity": "info",
    "scope": "puente",
    "node": "cloud-db1",
}
OLD_LEADER = LEADER | {"node": "onprem-db1"}


def drill_log(
    down_fired: float = FAULT + 21.0,
    down_resolved: float | None = RESTORE + 9.0,
    leader_fired: float = FAULT + 24.0,
    leader_resolved: float | None = RESTORE + 25.0,
) -> list[dict[str, Any]]:
    """A site failover as the cloud receiver records it: an earlier leader change (before the drill)
    resolving during it, site down and leader changed firing after the cut, then their resolutions."""
    rows = [
        record("firing", OLD_LEADER, -40.0, -34.0),
        record("resolved", OLD_LEADER, -40.0, FAULT + 12.0, ended=FAULT + 10.0),
        record("firing", DOWN, down_fired, down_fired + 6),
        record("firing", DOWN, down_fired, leader_fired + 6),  # the group's next notification repeats it
        record("firing", LEADER, leader_fired, leader_fired + 6),
    ]
    if down_resolved is not None:
        rows.append(record("resolved", DOWN, down_fired, down_resolved + 8, ended=down_resolved))
    if leader_resolved is not None:
        rows.append(record("resolved", LEADER, leader_fired, leader_resolved + 8, ended=leader_resolved))
    return rows


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in items}


def test_parse_skips_what_is_not_a_record():
    text = "failed to connect to syslog\n" + json.dumps(record("firing", DOWN, 1, 2)) + "\n{cut off\n[]\n"
    assert [r["alertname"] for r in alerts.parse_records(text)] == ["PuenteSiteDown"]


def test_records_on_the_drills_clock():
    got = alerts.on_the_drills_clock(drill_log(), T0, FAULT)
    assert [(a["alertname"], a["fired_at"], a["resolved_at"]) for a in got] == [
        ("PuenteSiteDown", 26.0, 44.0),
        ("PuenteDatabaseLeaderChanged", 29.0, 60.0),
    ], "the alert that fired before the drill is left out; one item per firing, repeats merged"
    assert [a["after_fault"] for a in got] == [21.0, 24.0]
    assert got[0]["notified_at"] == 32.0 and got[0]["labels"]["monitor"] == "cloud"
    assert got[1]["summary"] == "PuenteDatabaseLeaderChanged summary"


def test_a_site_failover_that_raised_and_resolved_both_passes():
    got = alerts.on_the_drills_clock(drill_log(), T0, FAULT)
    checks = by_name(alerts.judge(got, scenarios.SITE_FAILOVER_ALERTS, FAULT, RESTORE))
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["alert_fired:PuenteSiteDown"]["detail"].startswith(
        'PuenteSiteDown{site="onprem"} fired 21.0 s after the fault'
    )
    assert "node=cloud-db1" in checks["alert_fired:PuenteDatabaseLeaderChanged"]["detail"]
    assert checks["alert_resolved:PuenteSiteDown"]["detail"].endswith("resolved 9.0 s after the restore")


@pytest.mark.parametrize(
    ("log", "failing", "words"),
    [
        (drill_log(down_fired=FAULT + 31.0), "alert_fired:PuenteSiteDown", "fired 31.0 s after the fault"),
        (drill_log(leader_resolved=None), "alert_resolved:PuenteDatabaseLeaderChanged", "still firing"),
        (drill_log(down_resolved=RESTORE - 3.0), "alert_resolved:PuenteSiteDown", "3.0 s BEFORE the restore"),
        (
            [r for r in drill_log() if r["alertname"] != "PuenteSiteDown"],
            "alert_fired:PuenteSiteDown",
            "never fired after the fault",
        ),
    ],
    ids=["fired-late", "never-resolved", "resolved-during-the-cut", "never-fired"],
)
def test_what_makes_the_site_failover_fail(log, failing: str, words: str):
    got = alerts.on_the_drills_clock(log, T0, FAULT)
    checks = by_name(alerts.judge(got, scenarios.SITE_FAILOVER_ALERTS, FAULT, RESTORE))
    assert not checks[failing]["ok"] and words in checks[failing]["detail"], checks[failing]
    assert [n for n, c in checks.items() if not c["ok"]] == [failing]


def test_a_lost_api_node_must_not_page_a_site_down():
    expects = scenarios.node_loss_alerts("api", "onprem")
    quiet = by_name(alerts.judge([], expects, FAULT, RESTORE))
    assert all(c["ok"] for c in quiet.values()) and set(quiet) == {
        "alert_silent:PuenteSiteDown",
        "alert_silent:PuenteDatabaseLeaderChanged",
    }
    loud = by_name(alerts.judge(alerts.on_the_drills_clock(drill_log(), T0, FAULT), expects, FAULT, RESTORE))
    assert not loud["alert_silent:PuenteSiteDown"]["ok"]
    assert "fired 21.0 s after the fault" in loud["alert_silent:PuenteSiteDown"]["detail"]


def test_node_loss_expectations():
    db = scenarios.node_loss_alerts("db", "onprem")
    assert [(e.alertname, e.fires) for e in db] == [
        ("PuenteDatabaseLeaderChanged", True),
        ("PuenteSiteDown", False),
    ]
    witness = scenarios.node_loss_alerts("witness", "witness")
    assert witness[0].labels == {"site": "witness"} and witness[0].resolves_after_restore


class FakeReceivers:
    """Receivers whose resolved notifications arrive only after some polls; one node may be unreadable."""

    def __init__(self, resolved_after_polls: int, broken: str | None = None):
        self.polls = 0
        self.resolved_after = resolved_after_polls
        self.broken = broken
        self.now = 0.0

    def read(self, node: str) -> list[dict[str, Any]]:
        if node == self.broken:
            raise CommandError(["podman", "exec", node], 125, "no such container")
        if node != "cloud-sqs1":
            return []
        self.polls += 1
        log = drill_log(down_resolved=None, leader_resolved=None)
        if self.polls > self.resolved_after:
            log = drill_log()
        return log

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def collect(fake: FakeReceivers, timeout: float = 60.0) -> dict[str, Any]:
    return alerts.collect(
        ["onprem-dns1", "cloud-sqs1"],
        scenarios.SITE_FAILOVER_ALERTS,
        t0_unix=T0,
        fault_at=FAULT,
        restore_at=RESTORE,
        timeout=timeout,
        reader=fake.read,
        clock=fake.clock,
        sleep=fake.sleep,
    )


def test_collect_waits_for_the_resolutions_and_says_how_long():
    out = collect(FakeReceivers(resolved_after_polls=3))
    assert all(c["ok"] for c in out["checks"]), out["checks"]
    assert out["monitoring"]["waited_for_resolution_seconds"] == 3 * alerts.POLL_SECONDS
    assert out["monitoring"]["still_firing"] == []
    assert len(out["alerts"]) == 2


def test_collect_gives_up_at_the_timeout_and_fails_clearly():
    out = collect(FakeReceivers(resolved_after_polls=1000), timeout=10.0)
    assert out["monitoring"]["waited_for_resolution_seconds"] == 10.0
    failing = [c for c in out["checks"] if not c["ok"]]
    assert [c["name"] for c in failing] == [
        "alert_resolved:PuenteSiteDown",
        "alert_resolved:PuenteDatabaseLeaderChanged",
    ]
    assert out["monitoring"]["still_firing"] == [
        "PuenteSiteDown monitor=cloud,site=onprem",
        "PuenteDatabaseLeaderChanged node=cloud-db1,scope=puente",
    ]


def test_an_unreadable_receiver_is_a_failed_check():
    out = collect(FakeReceivers(resolved_after_polls=0, broken="onprem-dns1"))
    failing = [c for c in out["checks"] if not c["ok"]]
    assert [c["name"] for c in failing] == ["alert_receivers_read"]
    assert "onprem-dns1" in failing[0]["detail"] and out["monitoring"]["read_errors"]


def test_the_table_lists_the_alerts_with_their_delay_and_the_wait():
    from puente.drill import report

    got = alerts.on_the_drills_clock(drill_log(leader_resolved=None), T0, FAULT)
    got.insert(0, got[0] | {"after_fault": -1.8})
    result = report.analyse([], scenario="site-failover", fault_at=FAULT, restore_at=RESTORE, ended_at=50.0)
    result |= {"alerts": got, "monitoring": {"waited_for_resolution_seconds": 12.5}}
    text = report.table(result)
    assert (
        "PuenteSiteDown -1.8 s, PuenteSiteDown +21.0 s, PuenteDatabaseLeaderChanged +24.0 s (firing)" in text
    )
    assert text.split("waited for their resolution")[1].splitlines()[0].strip() == "12.5 s"


def test_the_wait_is_an_option_of_every_drill():
    import argparse

    from puente.drill import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["drill", "node-loss", "--target", "db", "--alerts-timeout", "45"])
    assert cli._options(args).alerts_timeout == 45.0
    default = parser.parse_args(["drill", "site-failover"])
    assert cli._options(default).alerts_timeout == alerts.RESOLVE_TIMEOUT
    with pytest.raises(preflight.PreflightError, match="--alerts-timeout must be >= 0"):
        cli._options(parser.parse_args(["drill", "site-failover", "--alerts-timeout", "-1"]))
