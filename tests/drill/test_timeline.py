"""The per-second series behind the drill's HTML page, on synthetic attempts and samples: each figure
the chart draws must be able to come out wrong here first."""

from __future__ import annotations

import pytest

from puente.drill import timeline
from puente.drill.attempts import READ, VERIFY, WRITE, Attempt
from puente.drill.timeline import DnsSample

EDGES = {"10.0.1.10": "onprem", "10.0.2.10": "cloud"}


def att(started: float, took: float = 0.01, *, op: str = READ, error: str | None = None, site="onprem",
        address="10.0.1.10", status: int | None = 200) -> Attempt:  # fmt: skip
    return Attempt(started, started + took, op, 1, 1, status=status, error=error, site=site, address=address)


class TestPercentile:
    def test_nearest_rank(self):
        values = list(range(1, 101))
        assert timeline.percentile(values, 50) == 50
        assert timeline.percentile(values, 99) == 99
        assert timeline.percentile([7.0], 99) == 7.0
        assert timeline.percentile([3, 1, 2], 50) == 2


class TestSeries:
    def test_requests_by_answering_site_and_failures_by_kind(self):
        log = [
            att(0.1), att(0.5, op=WRITE), att(1.2, site="cloud", address="10.0.2.10"),
            att(1.3, error="timeout", status=None), att(1.9, error="http_503", status=503),
            att(2.5, error="http_503", status=503),
        ]  # fmt: skip
        s = timeline.series(log, ended_at=3.0)
        assert s["t"] == [0.0, 1.0, 2.0]
        assert s["requests_per_second"] == {"cloud": [0, 1, 0], "onprem": [2, 0, 0], "failed": [0, 2, 1]}
        assert s["errors"] == {"http_503": [0, 1, 1], "timeout": [0, 1, 0]}

    def test_rate_is_per_second_whatever_the_bucket(self):
        log = [att(0.1 * i) for i in range(10)]
        s = timeline.series(log, ended_at=1.0, bucket=0.5)
        assert s["requests_per_second"]["onprem"] == [10, 10]

    def test_the_read_back_after_the_drill_is_not_load(self):
        log = [att(0.1), att(50.0, op=VERIFY)]
        s = timeline.series(log, ended_at=2.0)
        assert len(s["t"]) == 2 and s["requests_per_second"]["onprem"] == [1, 0]

    def test_buckets_cover_the_last_attempt_and_the_end(self):
        assert len(timeline.series([att(4.5)], ended_at=2.0)["t"]) == 5
        assert len(timeline.series([att(0.5)], ended_at=7.2)["t"]) == 8

    def test_latency_percentiles_include_timeouts_and_skip_empty_seconds(self):
        log = [att(0.0 + i / 100, took=0.010) for i in range(99)] + [att(0.99, took=3.0, error="timeout")]
        s = timeline.series(log, ended_at=3.0)
        assert s["latency_ms"]["p50"] == [10.0, None, None]
        assert s["latency_ms"]["p99"][0] == 10.0  # 99th of 100 values; the 100th is the timeout
        log.append(att(0.995, took=3.0, error="timeout"))
        assert timeline.series(log, ended_at=3.0)["latency_ms"]["p99"][0] == 3000.0

    def test_dns_samples_name_their_sites(self):
        dns = [DnsSample(0.0, ("10.0.1.10",)), DnsSample(1.0, ("10.0.2.10", "10.0.1.10")),
               DnsSample(2.0, ("10.9.9.9",)), DnsSample(3.0, (), "timeout")]  # fmt: skip
        s = timeline.series([], ended_at=4.0, dns=dns, site_of_address=EDGES)
        assert [x["sites"] for x in s["dns"]["samples"]] == [["onprem"], ["cloud", "onprem"], ["?"], []]
        assert s["dns"]["samples"][3]["error"] == "timeout" and s["dns"]["source"] == "server"

    def test_an_address_the_attempts_saw_answered_names_its_site(self):
        """Older reports carry no address map: the attempts' own site says it."""
        s = timeline.series([att(0.1, site="cloud", address="10.0.2.10")], ended_at=1.0,
                            dns=[DnsSample(0.0, ("10.0.2.10",))])  # fmt: skip
        assert s["dns"]["samples"][0]["sites"] == ["cloud"]

    def test_leader_samples(self):
        rounds = [(0.5, ["onprem-db1"]), (1.5, []), (2.5, ["cloud-db1", "onprem-db1"])]
        members = {"onprem-db1": "onprem", "cloud-db1": "cloud"}
        s = timeline.series([], ended_at=3.0, leaders=rounds, site_of_member=members)
        assert s["leader"]["samples"] == [
            {"t": 0.5, "leaders": ["onprem-db1"], "sites": ["onprem"]},
            {"t": 1.5, "leaders": [], "sites": []},
            {"t": 2.5, "leaders": ["cloud-db1", "onprem-db1"], "sites": ["cloud", "onprem"]},
        ]
        assert timeline.series([], ended_at=3.0)["leader"] is None, "not sampled is not 'no leader'"


def test_client_dns_is_the_addresses_used_each_second():
    log = [att(0.2), att(0.4, address="10.0.2.10"), att(2.1, address="10.0.2.10"), att(2.2, op=VERIFY)]
    assert timeline.client_dns(log) == [
        DnsSample(0.0, ("10.0.1.10", "10.0.2.10")),
        DnsSample(2.0, ("10.0.2.10",)),
    ]


T0 = 1_764_900_000.0  # 2025-12-05T02:00:00Z


def _alert(status: str, starts: str, ends: str = "0001-01-01T00:00:00Z", **labels: str) -> dict:
    return {
        "status": status,
        "labels": {"alertname": "PuenteSiteDown", "severity": "critical", **labels},
        "annotations": {"summary": "site onprem is down"},
        "startsAt": starts,
        "endsAt": ends,
    }


class TestAlertsFromWebhook:
    def test_firing_then_resolved_is_one_alert_on_the_drill_clock(self):
        payloads = [
            {"status": "firing", "alerts": [_alert("firing", "2025-12-05T02:00:12.5Z", site="onprem")]},
            {"status": "resolved", "alerts": [
                _alert("resolved", "2025-12-05T02:00:12.5Z", "2025-12-05T02:00:41.25Z", site="onprem")]},
        ]  # fmt: skip
        got = timeline.alerts_from_webhook(payloads, T0, received_unix=[T0 + 14.0, T0 + 42.0])
        assert got == [
            {"alertname": "PuenteSiteDown", "severity": "critical",
             "labels": {"alertname": "PuenteSiteDown", "severity": "critical", "site": "onprem"},
             "summary": "site onprem is down", "fired_at": 12.5, "resolved_at": 41.25, "notified_at": 14.0}
        ]  # fmt: skip

    def test_still_firing_has_no_resolution(self):
        got = timeline.alerts_from_webhook([{"alerts": [_alert("firing", "2025-12-05T02:00:03Z")]}], T0)
        assert got[0]["resolved_at"] is None and got[0]["notified_at"] is None and got[0]["fired_at"] == 3.0

    def test_a_new_firing_after_resolution_is_a_second_alert(self):
        payloads = [
            {"alerts": [_alert("firing", "2025-12-05T02:00:05Z")]},
            {"alerts": [_alert("resolved", "2025-12-05T02:00:05Z", "2025-12-05T02:00:09Z")]},
            {"alerts": [_alert("firing", "2025-12-05T02:00:20Z")]},
        ]
        got = timeline.alerts_from_webhook(payloads, T0)
        assert [(a["fired_at"], a["resolved_at"]) for a in got] == [(5.0, 9.0), (20.0, None)]

    def test_instances_are_told_apart_by_labels_and_ordered_by_firing(self):
        payloads = [{"alerts": [_alert("firing", "2025-12-05T02:00:09Z", site="cloud"),
                                _alert("firing", "2025-12-05T02:00:04Z", site="onprem")]}]  # fmt: skip
        got = timeline.alerts_from_webhook(payloads, T0)
        assert [a["labels"]["site"] for a in got] == ["onprem", "cloud"]

    @pytest.mark.parametrize(
        "stamp, seconds",
        [("2025-12-05T02:00:01.123456789Z", 1.123), ("2025-12-05T03:00:02+01:00", 2.0),
         ("2025-12-05T02:00:00Z", 0.0)],
    )  # fmt: skip
    def test_go_timestamps(self, stamp: str, seconds: float):
        got = timeline.alerts_from_webhook([{"alerts": [_alert("firing", stamp)]}], T0)
        assert got[0]["fired_at"] == pytest.approx(seconds, abs=1e-3)
