"""bench/failover_rto.py without a lab: the distribution maths, the verdict, the plan, the figures it
reads from a drill's report (built by the real ``report.analyse``), and the loop's bookkeeping with the
drills replaced by fakes (an error is recorded and the plan goes on; Ctrl-C keeps what ran)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from puente_test_support import load_module

from puente.drill import cli, report, scenarios
from puente.drill.attempts import READ, VERIFY, WRITE, Attempt

BENCH = Path(__file__).resolve().parents[2] / "bench" / "failover_rto.py"


def _load_bench():
    return load_module(BENCH, "failover_rto", register=True)


bench = _load_bench()
LIMITS = report.Thresholds()  # reads 5 s, writes 15 s


def run(index: int, read: float | None, write: float | None, **kw: Any) -> dict[str, Any]:
    """A per-run record as the bench keeps it (a counted site-failover run unless told otherwise)."""
    rec = {
        "index": index,
        "drill": "site-failover",
        "counted": True,
        "after": None,
        "after_partition": False,
        "error": None,
        "passed": True,
        "rto_read": read,
        "rto_write": write,
        "acknowledged": 100,
        "lost": 0,
        "unverified": 0,
        "duplicates": 0,
        "db_checked": True,
        "leader_before": "onprem-db1",
        "leader_after": ["cloud-db1"],
    }
    rec.update(kw)
    return rec


class TestDistribution:
    def test_median_of_three_is_the_middle_one(self):
        d = bench.distribution([5.0, 3.0, 4.0])
        assert d == {"n": 3, "recovered": 3, "never": 0, "min": 3.0, "median": 4.0, "p90": 5.0, "max": 5.0}

    def test_p90_of_ten_is_the_ninth_smallest(self):
        d = bench.distribution([7, 2, 9, 1, 10, 4, 3, 8, 6, 5])
        assert (d["min"], d["median"], d["p90"], d["max"]) == (1, 5.5, 9, 10)

    def test_p90_nearest_rank_on_other_counts(self):
        assert bench.distribution(list(range(1, 21)))["p90"] == 18  # ceil(18.0)
        assert bench.distribution(list(range(1, 8)))["p90"] == 7  # ceil(6.3) = 7: the max
        assert bench.distribution([3.29])["p90"] == 3.29

    def test_never_recovered_ranks_worst_and_is_shown(self):
        d = bench.distribution([3.0, None, 4.0])
        assert (d["recovered"], d["never"]) == (2, 1)
        assert (d["min"], d["median"], d["p90"], d["max"]) == (3.0, 4.0, None, None)

    def test_one_never_in_ten_spoils_only_the_max(self):
        d = bench.distribution([*range(1, 10), None])
        assert (d["median"], d["p90"], d["max"], d["never"]) == (5.5, 9, None, 1)

    def test_two_never_in_ten_reach_the_p90(self):
        d = bench.distribution([*range(1, 9), None, None])
        assert d["p90"] is None and d["median"] == 5.5

    def test_even_count_median_reaching_a_never_is_never(self):
        assert bench.distribution([1.0, None])["median"] is None

    def test_empty(self):
        d = bench.distribution([])
        assert d["n"] == 0 and d["median"] is None and d["p90"] is None


class TestVerdict:
    def test_every_run_within_the_limits(self):
        s = bench.summarise([run(1, 3.3, 12.2), run(2, 3.5, 12.7), run(3, 4.9, 14.9)], LIMITS)
        assert s["all_met"] and s["misses"] == []
        assert s["rto"]["read"]["median"] == 3.5
        assert s["rto"]["write"]["max"] == 14.9

    def test_one_slow_read_and_the_verdict_is_no(self):
        s = bench.summarise([run(1, 3.3, 12.2), run(2, 5.6, 13.5), run(3, 3.5, 12.7)], LIMITS)
        assert not s["all_met"]
        assert s["misses"] == [{"index": 2, "reasons": ["reads 5.60 s > 5 s"]}]

    def test_never_recovered_is_a_miss(self):
        s = bench.summarise([run(1, 3.3, None)], LIMITS)
        assert not s["all_met"]
        assert s["misses"][0]["reasons"] == ["writes never recovered"]
        assert s["rto"]["write"]["never"] == 1

    def test_lost_unverified_and_duplicates_are_misses_and_totalled(self):
        runs = [run(1, 3, 12, lost=2), run(2, 3, 12, unverified=1), run(3, 3, 12, duplicates=1)]
        s = bench.summarise(runs, LIMITS)
        assert (s["lost_total"], s["unverified_total"], s["duplicates_total"]) == (2, 1, 1)
        assert [m["reasons"] for m in s["misses"]] == [["2 lost"], ["1 unverified"], ["1 duplicate effects"]]
        assert [p["lost"] for p in s["per_run"]] == [2, 0, 0]

    def test_unchecked_database_is_a_miss(self):
        s = bench.summarise([run(1, 3, 12, db_checked=False)], LIMITS)
        assert s["misses"][0]["reasons"] == ["duplicates not checked in the database"]

    def test_an_error_is_a_miss_left_out_of_the_distribution(self):
        runs = [run(1, 3.0, 12.0), run(2, None, None, error="PreflightError: the drill cannot start")]
        s = bench.summarise(runs, LIMITS)
        assert (s["site_failover_runs"], s["completed"], s["errors"]) == (2, 1, 1)
        assert s["rto"]["read"]["n"] == 1 and s["rto"]["read"]["never"] == 0
        assert s["misses"] == [{"index": 2, "reasons": ["error: PreflightError: the drill cannot start"]}]
        assert not s["all_met"]

    def test_preceding_drills_are_recorded_not_counted(self):
        partition = run(2, 30.0, None, drill="partition", counted=False, lost=5)
        runs = [run(1, 3.0, 12.0), partition, run(3, 4.0, 13.0, after="partition", after_partition=True)]
        s = bench.summarise(runs, LIMITS)
        assert s["all_met"]
        assert s["site_failover_runs"] == 2 and s["lost_total"] == 0
        assert s["rto"]["read"]["max"] == 4.0
        assert s["runs_after_partition"] == [3]
        assert s["rto_after_partition"]["read"]["median"] == 4.0
        assert s["rto_not_after_partition"]["read"]["median"] == 3.0
        assert s["preceding_drills"] == [{"index": 2, "drill": "partition", "passed": True, "error": None}]

    def test_interrupted_run_is_neither_figure_nor_miss_and_nothing_done_is_no(self):
        s = bench.summarise([run(1, None, None, error="interrupted (Ctrl-C)", interrupted=True)], LIMITS)
        assert s["interrupted"] == 1 and s["misses"] == [] and s["completed"] == 0
        assert not s["all_met"]
        assert "NO: no site-failover run completed" in bench.table([], s)

    def test_thresholds_come_from_the_options(self):
        s = bench.summarise([run(1, 5.6, 12.0)], report.Thresholds(rto_read=6, rto_write=15))
        assert s["all_met"]

    def test_table_shows_rows_distribution_and_final_line(self):
        runs = [
            run(1, 3.29, 12.25),
            run(2, None, None, error="CommandError: podman\nmore"),
            run(3, 5.6, 13.0),
        ]
        out = bench.table(runs, bench.summarise(runs, LIMITS))
        assert "onprem-db1 -> cloud-db1" in out
        assert "ERROR CommandError: podman" in out and "more" not in out
        assert out.splitlines()[-1].startswith("NO: 2 of 3 runs missed reads <= 5 s, writes <= 15 s")
        assert "#3: reads 5.60 s > 5 s" in out.splitlines()[-1]


class TestPlan:
    def test_every_kth_run_after_a_partition(self):
        sf, p = "site-failover", "partition"
        assert bench.plan(4, 2) == [sf, p, sf, sf, p, sf]
        assert bench.plan(6, 3) == [sf, sf, p, sf, sf, sf, p, sf]
        assert bench.plan(3, 0) == [sf, sf, sf]

    def test_sequence(self):
        assert bench.parse_sequence(" site-failover, partition ,site-failover") == [
            "site-failover",
            "partition",
            "site-failover",
        ]
        with pytest.raises(ValueError, match="unknown"):
            bench.parse_sequence("site-failover,node-loss")
        with pytest.raises(ValueError, match="no site-failover"):
            bench.parse_sequence("partition,failback")

    def test_options_are_the_drills_and_out_is_the_summary(self, tmp_path: Path):
        args = bench.build_parser().parse_args(["--out", str(tmp_path / "s.json"), "--hold", "25"])
        assert args.summary == tmp_path / "s.json"
        assert args.out == scenarios.OUT_DIR  # the drills' report directory, as `puente drill` has it
        opts = cli._options(args)
        default = scenarios.DrillOptions()
        assert (opts.warmup, opts.hold, opts.after) == (default.warmup, 25.0, default.after)
        assert opts.shape == default.shape and opts.thresholds == default.thresholds
        assert bench.equivalent_argv("partition", args)[:7] == [
            "puente",
            "drill",
            "partition",
            "--warmup",
            "5",
            "--hold",
            "25",
        ]


# -- figures from a real report (report.analyse on a synthetic attempt log) ----------------------------------

BEFORE = [
    {"name": "onprem-db1", "role": "leader", "state": "running", "lag": 0},
    {"name": "cloud-db1", "role": "sync_standby", "state": "streaming", "lag": 0},
]
AFTER = [
    {"name": "onprem-db1", "role": "replica", "state": "streaming"},
    {"name": "cloud-db1", "role": "leader", "state": "running"},
]


def drill_result(read_back: float, write_back: float, *, scenario: str = "site-failover", lost: int = 0):
    """What a drill returns: reads fail from the fault (t=10) for ``read_back`` s, writes for
    ``write_back`` s; ``lost`` acknowledged writes read back 404."""
    log: list[Attempt] = []
    n = iter(range(1, 10**6))

    def add(op: str, t: float, ok: bool = True, **kw: Any) -> None:
        status = (201 if op == WRITE else 200) if ok else None
        kw.setdefault("status", status)
        log.append(Attempt(t, t, op, next(n), 1, error=None if ok else "connect", site="cloud", **kw))

    for op, back in ((READ, read_back), (WRITE, write_back)):
        t = 10.0
        while t < 10 + back:
            add(op, t, ok=False)
            t += 0.5
        add(op, 10 + back)
    for i in range(4):
        add(WRITE, 2.0 + i, key=f"k{i}", shipment_id=f"s{i}")
        if i < lost:
            add(VERIFY, 45, ok=False, status=404, shipment_id=f"s{i}")
        else:
            add(VERIFY, 45, shipment_id=f"s{i}")
    result = report.analyse(
        log,
        scenario=scenario,
        fault_at=10,
        restore_at=30,
        ended_at=40,
        cluster_before=BEFORE,
        cluster_after=AFTER,
        max_leaders_seen=1,
        db=report.DbFacts(shipments=4, labels=4),
    )
    return result


def test_run_figures_read_the_reports_keys():
    result = {**drill_result(3.5, 12.0, lost=1), "output_dir": ".cache/drill/x-site-failover"}
    f = bench.run_figures(result)
    assert (f["rto_read"], f["rto_write"]) == (3.5, 12.0)
    assert (f["acknowledged"], f["lost"], f["unverified"], f["duplicates"]) == (4, 1, 0, 0)
    assert f["db_checked"] is True
    assert (f["leader_before"], f["leader_after"]) == ("onprem-db1", ["cloud-db1"])
    assert f["passed"] is False and f["failed_checks"] == ["acknowledged_writes_lost"]
    assert f["report_dir"] == ".cache/drill/x-site-failover"


def _write_report(root: Path, stamp: str, result: dict[str, Any]) -> Path:
    d = root / f"{stamp}-{result['scenario']}"
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps(result))
    return d


def test_from_reports_orders_by_time_and_marks_what_followed_a_partition(tmp_path: Path):
    _write_report(tmp_path, "20261129T100000Z", drill_result(3.3, 12.2))
    _write_report(tmp_path, "20261129T100200Z", drill_result(3.8, 12.3, scenario="partition-db"))
    _write_report(tmp_path, "20261129T100400Z", drill_result(5.6, 13.0))
    _write_report(tmp_path, "20261129T120000Z", drill_result(3.4, 12.5))  # two hours later: cold
    runs, sources = bench.from_reports([tmp_path], max_gap=600)
    assert len(sources) == 4
    assert [(r["drill"], r["counted"], r["after"]) for r in runs] == [
        ("site-failover", True, None),
        ("partition", False, "site-failover"),
        ("site-failover", True, "partition"),
        ("site-failover", True, None),
    ]
    assert runs[2]["after_partition"] and runs[2]["gap_seconds"] == 80.0  # 120 s - 40 s of load
    s = bench.summarise(runs, LIMITS)
    assert s["runs_after_partition"] == [3]
    assert s["rto"]["read"]["median"] == 3.4 and s["rto"]["read"]["max"] == 5.6
    assert s["misses"] == [{"index": 3, "reasons": ["reads 5.60 s > 5 s"]}]


def test_main_from_reports_prints_the_table_and_writes_the_summary(tmp_path: Path, capsys):
    _write_report(tmp_path / "drill", "20261129T100000Z", drill_result(3.29, 12.25))
    _write_report(tmp_path / "drill", "20261129T100200Z", drill_result(3.53, 12.7))
    out_file = tmp_path / "bench" / "s.json"
    rc = bench.main(["--from-reports", str(tmp_path / "drill"), "--out", str(out_file)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "YES: every site-failover run (2) met reads <= 5 s, writes <= 15 s, 0 lost, 0 duplicates" in out
    doc = json.loads(out_file.read_text())
    assert doc["summary"]["rto"]["read"]["median"] == pytest.approx(3.41)
    assert [r["rto_write"] for r in doc["runs"]] == [12.25, 12.7]


# -- the loop, with the drills replaced by fakes ------------------------------------------------------------


def test_run_plan_records_errors_goes_on_and_stops_cleanly_on_ctrl_c(tmp_path: Path, monkeypatch, capsys):
    calls: list[str] = []
    outcomes = iter(
        [
            lambda: drill_result(3.3, 12.2),
            lambda: (_ for _ in ()).throw(RuntimeError("table puente_wan already exists")),
            lambda: drill_result(4.0, 12.0, scenario="partition-db"),
            lambda: drill_result(5.6, 13.0),
            lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
        ]
    )

    def fake(name: str):
        def drill(topo, opts):
            assert isinstance(opts, scenarios.DrillOptions) and opts.hold == 20.0
            calls.append(name)
            return {**next(outcomes)(), "output_dir": str(tmp_path / name)}

        return drill

    monkeypatch.setattr(bench, "DRILLS", {name: fake(name) for name in bench.DRILLS})
    monkeypatch.setattr(bench.topology, "load", lambda files=None: object())
    out_file = tmp_path / "s.json"
    rc = bench.main(["--runs", "4", "--after-partition-every", "3", "--out", str(out_file)])
    cap = capsys.readouterr()
    assert rc == 1
    # plan: sf, sf, partition, sf, sf; the fifth step was interrupted
    assert calls == ["site-failover", "site-failover", "partition", "site-failover", "site-failover"]
    assert "+ puente drill partition --warmup 5 --hold 20 --after 15" in cap.err
    doc = json.loads(out_file.read_text())
    assert doc["interrupted"] is True and doc["not_run"] == []
    runs = doc["runs"]
    assert runs[1]["error"] == "RuntimeError: table puente_wan already exists"
    assert runs[3]["after_partition"] is True and runs[3]["rto_read"] == 5.6
    assert runs[4]["interrupted"] is True
    s = doc["summary"]
    assert (s["site_failover_runs"], s["completed"], s["errors"], s["interrupted"]) == (3, 2, 1, 1)
    assert s["rto"]["read"]["min"] == 3.3 and s["rto"]["read"]["max"] == 5.6
    assert "[interrupted: the plan did not finish]" in cap.out.splitlines()[-2]


def test_dry_run_runs_nothing(monkeypatch, capsys):
    monkeypatch.setattr(bench, "DRILLS", {name: None for name in bench.DRILLS})
    assert bench.main(["--dry-run", "--runs", "2", "--after-partition-every", "2"]) == 0
    err = capsys.readouterr().err
    assert "[2/3] partition, right after site-failover (not counted)" in err
    assert err.count("+ puente drill site-failover") == 2
