"""The drill's analysis on synthetic attempt logs: every figure the drill reports must be able to fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from puente.drill import report
from puente.drill.attempts import READ, VERIFY, WRITE, Attempt, dump_jsonl, load_jsonl

_counter = iter(range(1, 10**6))


def att(
    op: str,
    started: float,
    *,
    ok: bool = True,
    status: int | None = None,
    key: str | None = None,
    sid: str | None = None,
    site: str = "onprem",
    error: str | None = None,
    request: int | None = None,
    try_no: int = 1,
    took: float = 0.05,
) -> Attempt:
    if status is None:
        status = (201 if op == WRITE else 200) if ok else None
    return Attempt(
        started,
        started + took,
        op,
        request or next(_counter),
        try_no,
        status=status,
        error=None if ok else (error or "connect"),
        site=site,
        key=key,
        shipment_id=sid,
    )


def steady(op: str, start: float, end: float, step: float = 0.5, **kw) -> list[Attempt]:
    out, t = [], start
    while t < end:
        out.append(att(op, t, **kw))
        t += step
    return out


class TestRto:
    def test_no_failure_means_zero(self):
        log = steady(READ, 0, 30)
        assert report.rto(log, READ, 10, 20).seconds == 0.0

    def test_outage_until_first_lasting_success(self):
        log = steady(READ, 0, 10) + steady(READ, 10, 13.2, ok=False) + steady(READ, 13.5, 30, site="cloud")
        r = report.rto(log, READ, 10.0, 20.0)
        assert r.seconds == pytest.approx(3.55)  # success started 13.5, seen at 13.55
        assert r.failed_attempts == 7

    def test_flapping_counts_as_down_until_the_last_failure(self):
        log = [
            *steady(WRITE, 10, 12, ok=False),
            att(WRITE, 12.1),
            *steady(WRITE, 12.5, 16, ok=False),
            *steady(WRITE, 16.2, 25),
        ]
        assert report.rto(log, WRITE, 10, 25).seconds == pytest.approx(6.25)

    def test_never_recovered_is_none(self):
        log = steady(WRITE, 0, 10) + steady(WRITE, 10, 20, ok=False)
        r = report.rto(log, WRITE, 10, 20)
        assert r.seconds is None

    def test_ops_are_measured_separately(self):
        log = steady(READ, 10, 20) + steady(WRITE, 10, 14, ok=False) + steady(WRITE, 14, 20)
        assert report.rto(log, READ, 10, 20).seconds == 0.0
        assert report.rto(log, WRITE, 10, 20).seconds == pytest.approx(4.05)

    def test_attempts_before_the_fault_do_not_count(self):
        log = steady(READ, 0, 5, ok=False) + steady(READ, 5, 20)
        assert report.rto(log, READ, 10, 20).seconds == 0.0


class TestLostWrites:
    def test_every_acknowledged_write_read_back(self):
        log = [
            att(WRITE, 1, key="k1", sid="s1"),
            att(WRITE, 2, key="k2", sid="s2"),
            att(VERIFY, 50, sid="s1"),
            att(VERIFY, 51, sid="s2"),
        ]
        lost = report.lost_writes(log)
        assert (lost.acknowledged, lost.lost, lost.unverified) == (2, [], [])

    def test_a_404_on_read_back_is_a_lost_write(self):
        log = [
            att(WRITE, 1, key="k1", sid="s1"),
            att(WRITE, 2, key="k2", sid="s2"),
            att(VERIFY, 50, sid="s1"),
            att(VERIFY, 51, sid="s2", ok=False, status=404, error="http_404"),
        ]
        assert report.lost_writes(log).lost == ["s2"]

    def test_no_read_back_is_unverified_not_fine(self):
        log = [att(WRITE, 1, key="k1", sid="s1"), att(VERIFY, 50, sid="s1", ok=False, error="timeout")]
        lost = report.lost_writes(log)
        assert (lost.lost, lost.unverified) == ([], ["s1"])

    def test_failed_writes_are_not_acknowledged(self):
        log = [att(WRITE, 1, key="k1", ok=False, status=503, error="http_503")]
        assert report.lost_writes(log).acknowledged == 0

    def test_retry_that_got_200_after_a_404_counts_as_present(self):
        log = [
            att(WRITE, 1, key="k1", sid="s1"),
            att(VERIFY, 50, sid="s1", ok=False, status=404, error="http_404"),
            att(VERIFY, 51, sid="s1"),
        ]
        assert report.lost_writes(log).lost == []


class TestDuplicates:
    def test_same_key_two_shipments_is_a_duplicate(self):
        log = [
            att(WRITE, 1, key="k1", sid="s1", try_no=1, request=7),
            att(WRITE, 2, key="k1", sid="s9", try_no=2, request=7),
            att(WRITE, 3, key="k2", sid="s2"),
        ]
        dups = report.duplicate_effects(log, report.DbFacts(shipments=3))
        assert dups["keys_with_many_shipments"] == {"k1": ["s1", "s9"]}
        assert dups["total"] == 1

    def test_replay_naming_the_same_shipment_is_not(self):
        log = [att(WRITE, 1, key="k1", sid="s1", status=201), att(WRITE, 2, key="k1", sid="s1", status=200)]
        assert report.duplicate_effects(log, report.DbFacts(shipments=1))["total"] == 0

    def test_server_side_duplicates_count(self):
        db = report.DbFacts.from_dict(
            {"shipments": 4, "references_with_many": {"k1": 2}, "shipments_with_many_labels": {"s3": 3}}
        )
        assert report.duplicate_effects([], db)["total"] == 1 + 2

    def test_unchecked_database_fails_the_check(self):
        log = [*steady(WRITE, 0, 30, key="k", sid="s"), att(VERIFY, 40, sid="s")]
        rep = report.analyse(log, scenario="t", fault_at=10, restore_at=20, ended_at=30, db=None)
        check = next(c for c in rep["checks"] if c["name"] == "duplicate_effects")
        assert not check["ok"]


class TestErrorsAndLag:
    def test_errors_by_kind_and_requests_given_up(self):
        log = [
            att(WRITE, 1, ok=False, error="connect", request=1, try_no=1, key="k"),
            att(WRITE, 2, ok=False, error="http_503", status=503, request=1, try_no=2, key="k"),
            att(WRITE, 3, request=1, try_no=3, key="k", sid="s"),
            att(READ, 4, ok=False, error="timeout", request=2, try_no=1),
        ]
        errs = report.errors_by_kind(log)
        assert errs["attempts"] == {"connect": 1, "http_503": 1, "timeout": 1}
        assert errs["requests_failed"] == {"timeout": 1}
        assert errs["retried_requests"] == 1

    def test_replication_lag_ignores_the_leader(self):
        members = [
            {"name": "db1", "role": "leader", "lag": 0},
            {"name": "db2", "role": "sync_standby", "lag": 0},
            {"name": "cdb1", "role": "replica", "lag": 4096},
            {"name": "x", "role": "replica", "lag": "unknown"},
        ]
        lag = report.replication_lag(members)
        assert lag["max_bytes"] == 4096
        assert lag["replicas"]["x"] is None


BEFORE = [
    {"name": "onprem-db1", "role": "leader", "state": "running"},
    {"name": "cloud-db1", "role": "sync_standby", "state": "streaming", "lag": 0},
]


class TestFencing:
    def test_old_leader_back_as_replica_is_fenced(self):
        after = [
            {"name": "onprem-db1", "role": "replica", "state": "streaming"},
            {"name": "cloud-db1", "role": "leader", "state": "running"},
        ]
        f = report.fencing(BEFORE, after, max_leaders_seen=1)
        assert f["fenced"] and f["failed_over"]

    def test_two_leaders_is_not(self):
        after = [
            {"name": "onprem-db1", "role": "leader", "state": "running"},
            {"name": "cloud-db1", "role": "leader", "state": "running"},
        ]
        assert not report.fencing(BEFORE, after, max_leaders_seen=1)["fenced"]

    def test_old_leader_stopped_is_not(self):
        after = [
            {"name": "onprem-db1", "role": "replica", "state": "stopped"},
            {"name": "cloud-db1", "role": "leader", "state": "running"},
        ]
        assert not report.fencing(BEFORE, after, max_leaders_seen=1)["fenced"]

    def test_split_brain_seen_during_the_fault_is_not(self):
        after = [
            {"name": "onprem-db1", "role": "replica", "state": "streaming"},
            {"name": "cloud-db1", "role": "leader", "state": "running"},
        ]
        assert not report.fencing(BEFORE, after, max_leaders_seen=2)["fenced"]


def _good_log() -> list[Attempt]:
    log = steady(READ, 0, 10, sid="s0") + steady(READ, 10, 12, ok=False) + steady(READ, 12, 40, site="cloud")
    log += [att(WRITE, 1, key="k0", sid="s0"), *steady(WRITE, 10, 19, ok=False, key="k1", request=99)]
    log += [att(WRITE, 19.5, key="k1", sid="s1", request=99), att(WRITE, 30, key="k2", sid="s2")]
    log += [att(VERIFY, 45, sid=s) for s in ("s0", "s1", "s2")]
    return log


AFTER = (
    {"name": "onprem-db1", "role": "replica", "state": "streaming"},
    {"name": "cloud-db1", "role": "leader", "state": "running"},
)


class TestVerdict:
    def _analyse(self, log, **kw):
        args = dict(
            scenario="site-failover",
            fault_at=10,
            restore_at=25,
            ended_at=40,
            cluster_before=BEFORE,
            cluster_after=AFTER,
            max_leaders_seen=1,
            db=report.DbFacts(shipments=3, labels=3),
        )
        args.update(kw)
        return report.analyse(log, **args)

    def test_a_good_run_passes_and_renders(self):
        rep = self._analyse(_good_log())
        assert rep["passed"], rep["checks"]
        assert rep["rto"]["read"]["seconds"] == pytest.approx(2.05)
        assert rep["rto"]["write"]["seconds"] == pytest.approx(9.55)
        assert "RTO writes" in report.table(rep)

    def test_slow_write_recovery_fails_the_verdict(self):
        rep = self._analyse(_good_log(), thresholds=report.Thresholds(rto_read=5, rto_write=9))
        assert not rep["passed"]
        assert [c["name"] for c in rep["checks"] if not c["ok"]] == ["rto_write"]

    def test_a_lost_write_fails_the_verdict(self):
        log = [a for a in _good_log() if not (a.op == VERIFY and a.shipment_id == "s1")]
        log.append(att(VERIFY, 46, sid="s1", ok=False, status=404, error="http_404"))
        rep = self._analyse(log)
        assert rep["writes"]["lost_ids"] == ["s1"]
        assert not rep["passed"]

    def test_a_dead_lettered_message_fails_the_verdict(self):
        rep = self._analyse(_good_log(), db=report.DbFacts(shipments=3, labels=3, dead_lettered=1))
        assert [c["name"] for c in rep["checks"] if not c["ok"]] == ["dead_lettered"]


def test_attempt_log_round_trips_through_jsonl(tmp_path: Path):
    log = _good_log()
    dump_jsonl(log, tmp_path / "a.jsonl")
    assert load_jsonl(tmp_path / "a.jsonl") == log


class TestContract:
    def test_a_500_fails_the_verdict(self):
        log = [*_good_log(), att(WRITE, 30.5, ok=False, status=500, error="http_500", key="k9")]
        rep = report.analyse(
            log, scenario="t", fault_at=10, restore_at=25, ended_at=40, db=report.DbFacts(shipments=3)
        )
        assert [c["name"] for c in rep["checks"] if not c["ok"]] == ["no_generic_500"]

    def test_without_a_site_to_fail_over_to_writes_must_get_503(self):
        log = [att(WRITE, 1, key="k0", sid="s0"), att(VERIFY, 45, sid="s0")]
        log += steady(WRITE, 10, 25, ok=False, status=503, error="http_503", key="k1", request=50)
        ok = report.analyse(
            log,
            scenario="partition-db",
            fault_at=10,
            restore_at=25,
            ended_at=40,
            db=report.DbFacts(shipments=1),
            expect_recovery=False,
        )
        assert ok["passed"], ok["checks"]
        log.append(att(WRITE, 20.2, ok=False, status=502, error="http_502", key="k2"))
        bad = report.analyse(
            log,
            scenario="partition-db",
            fault_at=10,
            restore_at=25,
            ended_at=40,
            db=report.DbFacts(shipments=1),
            expect_recovery=False,
        )
        assert [c["name"] for c in bad["checks"] if not c["ok"]] == ["unavailable_means_503"]
