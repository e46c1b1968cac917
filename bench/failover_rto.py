#!/usr/bin/env python3
"""Distribution of the site-failover drill's RTO over many runs on one lab (a script that prints
figures, not a test; issue 15).

It runs `puente drill site-failover` N times in a row, in-process (``scenarios.site_failover``, the
drill's own options and defaults), and every K-th run right after a `partition` drill
(``scenarios.db_partition``): a run that starts right after another drill is where the RTO's tail
showed. Each drill prints its commands and writes its own report under .cache/drill/ as usual; the
preceding drills' figures are recorded too, but only the site-failover runs make the distribution.

It prints one row per drill (RTO reads/writes, writes acknowledged, lost, unverified, duplicate
effects, leader before -> after), the distribution of the read and write RTO over the site-failover
runs (min, median, p90 nearest-rank, max; a run that never recovered counts as the worst value and is
shown as "never"), the totals, and a last line saying whether EVERY run met reads <= 5 s, writes
<= 15 s, 0 lost (and 0 unverified), 0 duplicate effects (limits: --max-rto-read/--max-rto-write, the
defaults of report.Thresholds). A drill that fails or raises is recorded with its error and the plan
goes on; Ctrl-C stops after the drill in progress lifted its fault, with the summary of what ran. The
summary JSON (every run's figures, the distribution, which runs followed a partition) goes to --out
and is rewritten after every drill.

    .venv/bin/python bench/failover_rto.py [--runs 10] [--after-partition-every 3]
        [--sequence site-failover,partition,site-failover,...] [--pause 0]
        [--warmup 5 --hold 20 --after 15 --workers 4 ...] [--out FILE] [--dry-run]
    .venv/bin/python bench/failover_rto.py --from-reports .cache/drill [DIR|report.json ...]

--from-reports runs nothing: it rebuilds the same summary from drills that already ran (report.json
files, in the order of their directories' UTC time); a drill counts as "after" the previous one when it
started at most --max-gap seconds after that one's load stopped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from puente.drill import cli, preflight, report, scenarios, topology
from puente.shell import ROOT, show

SITE_FAILOVER = "site-failover"
PARTITION = "partition"
# `puente drill` name -> the scenario function; only SITE_FAILOVER runs make the distribution.
DRILLS: dict[str, Callable[[topology.Topology, scenarios.DrillOptions], dict[str, Any]]] = {
    SITE_FAILOVER: scenarios.site_failover,
    PARTITION: scenarios.db_partition,
    "failback": scenarios.failback,
    "baseline": scenarios.baseline,
}
# the report's "scenario" -> the `puente drill` name (for --from-reports)
SCENARIO_TO_DRILL = {"partition-db": PARTITION}
BENCH_DIR = ROOT / ".cache" / "bench"
_STAMP = "%Y%m%dT%H%M%SZ"


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# -- the plan ------------------------------------------------------------------------------------------------


def plan(runs: int, after_partition_every: int) -> list[str]:
    """``runs`` site-failover drills; every ``after_partition_every``-th one (0: none) right after a
    partition drill. plan(4, 2) = [site-failover, partition, site-failover, site-failover, partition,
    site-failover]."""
    steps: list[str] = []
    for i in range(1, runs + 1):
        if after_partition_every > 0 and i % after_partition_every == 0:
            steps.append(PARTITION)
        steps.append(SITE_FAILOVER)
    return steps


def parse_sequence(text: str) -> list[str]:
    steps = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted({s for s in steps if s not in DRILLS})
    if unknown:
        raise ValueError(f"unknown drill(s) {unknown} in --sequence (known: {', '.join(DRILLS)})")
    if SITE_FAILOVER not in steps:
        raise ValueError(f"--sequence has no {SITE_FAILOVER} run to measure")
    return steps


def equivalent_argv(drill: str, args: argparse.Namespace) -> list[str]:
    """The `puente drill` command line the in-process run is the same as (printed before it runs)."""
    argv = [
        "puente",
        "drill",
        drill,
        "--warmup",
        f"{args.warmup:g}",
        "--hold",
        f"{args.hold:g}",
        "--after",
        f"{args.after:g}",
        "--workers",
        str(args.workers),
        "--write-ratio",
        f"{args.write_ratio:g}",
        "--max-requests",
        str(args.max_requests),
    ]
    for flag, value in (
        ("--dns-server", args.dns_server),
        ("--name", args.api_name),
        ("--dns-port", None if args.dns_port == 53 else args.dns_port),
        ("--port", None if args.port == 443 else args.port),
        ("--ca", None if args.ca == topology.CA_FILE else args.ca),
        ("--out", None if args.out == scenarios.OUT_DIR else args.out),
    ):
        if value is not None:
            argv += [flag, str(value)]
    for inv in args.inventory or []:
        argv += ["--inventory", str(inv)]
    thresholds = report.Thresholds()
    if args.max_rto_read != thresholds.rto_read:
        argv += ["--max-rto-read", f"{args.max_rto_read:g}"]
    if args.max_rto_write != thresholds.rto_write:
        argv += ["--max-rto-write", f"{args.max_rto_write:g}"]
    return argv


# -- figures (pure: unit-tested in tests/drill/test_failover_rto.py) ----------------------------------------


def run_figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """The figures the bench keeps from one drill's result (``report.analyse`` + ``output_dir``)."""
    rto = result.get("rto") or {}
    after = result.get("rto_after_restore") or {}
    writes = result.get("writes") or {}
    dups = result.get("duplicate_effects") or {}
    db = result.get("database") or {}
    return {
        "scenario": result.get("scenario"),
        "passed": result.get("passed"),
        "rto_read": (rto.get("read") or {}).get("seconds"),
        "rto_write": (rto.get("write") or {}).get("seconds"),
        "rto_after_restore_read": (after.get("read") or {}).get("seconds"),
        "rto_after_restore_write": (after.get("write") or {}).get("seconds"),
        "acknowledged": writes.get("acknowledged"),
        "lost": writes.get("lost"),
        "unverified": writes.get("unverified"),
        "duplicates": dups.get("total"),
        "db_checked": dups.get("db_checked"),
        "leader_before": db.get("old_leader"),
        "leader_after": list(db.get("leader_now") or []),
        "old_leader_fenced": db.get("fenced"),
        "failed_checks": [str(c.get("name")) for c in result.get("checks") or [] if not c.get("ok")],
        "report_dir": result.get("output_dir"),
    }


def distribution(values: Sequence[float | None]) -> dict[str, Any]:
    """min, median, p90 (nearest rank: the ceil(0.9 n)-th smallest), max of ``values``. None (the
    operation never recovered) ranks above every number: it is counted in ``never`` and shows as the
    statistic it reaches (max is None as soon as one run never recovered). The median of an even count
    is the mean of the two middle values, None if either is None."""
    n = len(values)
    known = sorted(float(v) for v in values if v is not None)
    ordered: list[float | None] = [*known, *([None] * (n - len(known)))]
    out: dict[str, Any] = {"n": n, "recovered": len(known), "never": n - len(known)}
    if n == 0:
        return {**out, "min": None, "median": None, "p90": None, "max": None}
    if n % 2:
        median = ordered[n // 2]
    else:
        lo, hi = ordered[n // 2 - 1], ordered[n // 2]
        median = None if lo is None or hi is None else round((lo + hi) / 2, 3)
    p90 = ordered[-(-90 * n // 100) - 1]  # rank ceil(0.9 n), integer arithmetic
    return {**out, "min": ordered[0], "median": median, "p90": p90, "max": ordered[-1]}


def misses(run: Mapping[str, Any], thresholds: report.Thresholds) -> list[str]:
    """Why one site-failover run did not meet the promise ([] = it met it)."""
    if run.get("error"):
        return [f"error: {str(run['error']).splitlines()[0]}"]
    out: list[str] = []
    for op, limit in (("read", thresholds.rto_read), ("write", thresholds.rto_write)):
        v = run.get(f"rto_{op}")
        if v is None:
            out.append(f"{op}s never recovered")
        elif v > limit:
            out.append(f"{op}s {v:.2f} s > {limit:g} s")
    for key, what in (("lost", "lost"), ("unverified", "unverified"), ("duplicates", "duplicate effects")):
        v = run.get(key)
        if v is None:
            out.append(f"{what} unknown")
        elif v:
            out.append(f"{v} {what}")
    if run.get("db_checked") is False:
        out.append("duplicates not checked in the database")
    return out


def summarise(runs: Sequence[Mapping[str, Any]], thresholds: report.Thresholds) -> dict[str, Any]:
    """The distribution over the counted site-failover runs (errors and interrupted runs left out of the
    figures; an error is a miss, an interrupted run is neither), the totals, and the verdict."""
    counted = [r for r in runs if r.get("counted") and not r.get("interrupted")]
    done = [r for r in counted if not r.get("error")]
    after_p = [r for r in done if r.get("after_partition")]
    others = [r for r in done if not r.get("after_partition")]

    def dist(rs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {
            "read": distribution([r.get("rto_read") for r in rs]),
            "write": distribution([r.get("rto_write") for r in rs]),
        }

    def total(key: str) -> int:
        return sum(int(r.get(key) or 0) for r in done)

    missed = [{"index": r.get("index"), "reasons": m} for r in counted if (m := misses(r, thresholds))]
    return {
        "thresholds": {"rto_read": thresholds.rto_read, "rto_write": thresholds.rto_write},
        "site_failover_runs": len(counted),
        "completed": len(done),
        "errors": len(counted) - len(done),
        "interrupted": sum(1 for r in runs if r.get("interrupted")),
        "runs_after_partition": [r.get("index") for r in counted if r.get("after_partition")],
        "rto": dist(done),
        "rto_after_partition": dist(after_p),
        "rto_not_after_partition": dist(others),
        "acknowledged_total": total("acknowledged"),
        "lost_total": total("lost"),
        "unverified_total": total("unverified"),
        "duplicates_total": total("duplicates"),
        "per_run": [
            {
                k: r.get(k)
                for k in ("index", "lost", "unverified", "duplicates", "leader_before", "leader_after")
            }
            for r in done
        ],
        "preceding_drills": [
            {k: r.get(k) for k in ("index", "drill", "passed", "error")} for r in runs if not r.get("counted")
        ],
        "misses": missed,
        "all_met": bool(done) and not missed,
    }


# -- printing ------------------------------------------------------------------------------------------------


def _secs(v: float | None) -> str:
    return "never" if v is None else f"{v:.2f}"


def _num(v: Any) -> str:
    return "?" if v is None else str(v)


def _leaders(run: Mapping[str, Any]) -> str:
    after = ", ".join(run.get("leader_after") or []) or "none"
    return f"{run.get('leader_before') or '?'} -> {after}"


def table(runs: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    head = ("#", "drill", "after", "reads s", "writes s", "acked", "lost", "unverif", "dups", "leader", "")
    rows = [head]
    for r in runs:
        base = (str(r.get("index")), str(r.get("drill")), str(r.get("after") or "-"))
        if r.get("error"):
            rows.append(
                (*base, "-", "-", "-", "-", "-", "-", "-", f"ERROR {str(r['error']).splitlines()[0]}")
            )
            continue
        verdict = "PASS" if r.get("passed") else "FAIL " + ",".join(r.get("failed_checks") or [])
        rows.append(
            (
                *base,
                _secs(r.get("rto_read")),
                _secs(r.get("rto_write")),
                _num(r.get("acknowledged")),
                _num(r.get("lost")),
                _num(r.get("unverified")),
                _num(r.get("duplicates")),
                _leaders(r),
                verdict + ("" if r.get("counted") else " (not counted)"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    lines = [
        ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]).rstrip()
        for row in rows
    ]

    s = summary
    lines += [
        "",
        f"site-failover runs: {s['site_failover_runs']} ({s['completed']} completed, "
        f"{s['errors']} failed to run)"
        f"; after a partition: {', '.join(f'#{i}' for i in s['runs_after_partition']) or 'none'}",
    ]

    def block(title: str, d: Mapping[str, Any]) -> list[str]:
        out = [f"{title:<34}{'n':>3}  {'min':>7}  {'median':>7}  {'p90':>7}  {'max':>7}  never"]
        for op, name in (("read", "reads"), ("write", "writes")):
            x = d[op]
            out.append(
                f"  RTO {name:<28}{x['n']:>3}  {_secs(x['min']):>7}  {_secs(x['median']):>7}  "
                f"{_secs(x['p90']):>7}  {_secs(x['max']):>7}  {x['never']}"
            )
        return out

    lines += block("RTO (s), all site-failover runs", s["rto"])
    if s["runs_after_partition"]:
        lines += block("  right after a partition", s["rto_after_partition"])
        lines += block("  not after a partition", s["rto_not_after_partition"])
    lines.append(
        f"totals over the completed site-failover runs (per run: the table above): "
        f"{s['acknowledged_total']} writes acknowledged, {s['lost_total']} lost, "
        f"{s['unverified_total']} unverified, {s['duplicates_total']} duplicate effects"
    )
    t = s["thresholds"]
    promise = f"reads <= {t['rto_read']:g} s, writes <= {t['rto_write']:g} s, 0 lost, 0 duplicates"
    if s["all_met"]:
        verdict = f"YES: every site-failover run ({s['completed']}) met {promise}"
    elif not s["completed"]:
        verdict = f"NO: no site-failover run completed, nothing met {promise}"
    else:
        why = "; ".join(f"#{m['index']}: {', '.join(m['reasons'])}" for m in s["misses"])
        verdict = f"NO: {len(s['misses'])} of {s['site_failover_runs']} runs missed {promise} ({why})"
    if s["interrupted"]:
        verdict += " [interrupted: the plan did not finish]"
    lines.append(verdict)
    return "\n".join(lines)


# -- running -------------------------------------------------------------------------------------------------


def _record(index: int, drill: str, after: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "drill": drill,
        "counted": drill == SITE_FAILOVER,
        "after": after,
        "after_partition": after == PARTITION,
        "error": None,
    }


def run_plan(
    steps: Sequence[str], args: argparse.Namespace, write: Callable[[list[dict[str, Any]], bool], None]
) -> tuple[list[dict[str, Any]], bool]:
    """Run every step, recording each; returns (records, interrupted)."""
    opts = cli._options(args)
    topo = topology.load(opts.inventory)
    runs: list[dict[str, Any]] = []
    after: str | None = None
    for i, drill in enumerate(steps, 1):
        if i > 1 and args.pause > 0:
            say(f"pause {args.pause:g} s")
            try:
                time.sleep(args.pause)
            except KeyboardInterrupt:
                return runs, True
        rec = _record(i, drill, after)
        rec["started"] = datetime.now(UTC).isoformat(timespec="seconds")
        say(f"[{i}/{len(steps)}] {drill}" + (f", right after {after}" if after else "") + ", in-process:")
        show(equivalent_argv(drill, args))
        t = time.monotonic()
        try:
            result = DRILLS[drill](topo, replace(opts))
        except KeyboardInterrupt:
            rec.update(error="interrupted (Ctrl-C)", interrupted=True, seconds=round(time.monotonic() - t, 1))
            runs.append(rec)
            say(f"[{i}/{len(steps)}] interrupted; if a fault may be left in place: puente drill cleanup")
            return runs, True
        except Exception as exc:  # recorded, and the plan goes on
            rec["error"] = f"{type(exc).__name__}: {exc}"[:4000]
            say(f"[{i}/{len(steps)}] {drill} did not run to the end: {rec['error']}")
        else:
            rec.update(run_figures(result))
        rec["seconds"] = round(time.monotonic() - t, 1)
        runs.append(rec)
        if not rec["error"]:
            say(
                f"[{i}/{len(steps)}] {drill}: reads {_secs(rec['rto_read'])} s, "
                f"writes {_secs(rec['rto_write'])} s, "
                f"lost {_num(rec['lost'])} (+{_num(rec['unverified'])} unverified), "
                f"duplicates {_num(rec['duplicates'])}, {'PASS' if rec['passed'] else 'FAIL'}; "
                f"report {rec['report_dir']}/report.json"
            )
        write(runs, False)
        after = drill
    return runs, False


_DIR = re.compile(r"^(\d{8}T\d{6}Z)-(.+)$")


def from_reports(paths: Sequence[Path], max_gap: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Records rebuilt from drills that already ran (report.json files or directories holding them)."""
    files: set[Path] = set()
    for p in paths:
        if p.is_file():
            files.add(p)
        elif (p / "report.json").is_file():
            files.add(p / "report.json")
        else:
            files.update(p.glob("*/report.json"))
    runs: list[dict[str, Any]] = []
    prev: tuple[str, datetime | None, float | None] | None = None  # drill, start, load ended (s)
    used: list[str] = []
    for f in sorted(files, key=lambda f: (f.parent.name, str(f))):
        result = json.loads(f.read_text())
        if not isinstance(result, dict) or "scenario" not in result or "rto" not in result:
            say(f"{f}: not a drill report (no scenario/rto), left out")
            continue
        drill = SCENARIO_TO_DRILL.get(str(result["scenario"]), str(result["scenario"]))
        m = _DIR.match(f.parent.name)
        start = datetime.strptime(m.group(1), _STAMP).replace(tzinfo=UTC) if m else None
        gap = None
        if prev and prev[1] and start:
            gap = (start - (prev[1] + timedelta(seconds=prev[2] or 0))).total_seconds()
        after = prev[0] if prev and (gap is None or gap <= max_gap) else None
        rec = _record(len(runs) + 1, drill, after)
        rec.update(run_figures({**result, "output_dir": str(f.parent)}))
        rec["started"] = start.isoformat() if start else None
        rec["gap_seconds"] = gap
        runs.append(rec)
        prev = (drill, start, (result.get("timeline") or {}).get("ended_at"))
        used.append(str(f))
    return runs, used


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/failover_rto.py",
        description=__doc__.split("\n\n")[0],
        # the drill's own options (cli._common), with --out/--json re-bound to the bench's summary
        conflict_handler="resolve",
    )
    cli._common(p)
    g = p.add_argument_group("plan")
    g.add_argument("--runs", type=int, default=10, help="site-failover runs to measure (10)")
    g.add_argument(
        "--after-partition-every",
        type=int,
        default=3,
        metavar="K",
        help="every K-th site-failover run right after a partition drill (3; 0: never)",
    )
    g.add_argument(
        "--sequence",
        help=f"an explicit plan instead, comma-separated, of {', '.join(DRILLS)} "
        f"(e.g. site-failover,partition,site-failover,failback,site-failover); only {SITE_FAILOVER} counts",
    )
    g.add_argument("--pause", type=float, default=0.0, help="seconds between two drills (0: right after)")
    g.add_argument("--dry-run", action="store_true", help="print the plan and its commands, run nothing")
    g = p.add_argument_group("output")
    g.add_argument(
        "--out",
        dest="summary",
        type=Path,
        metavar="FILE",
        help="summary JSON (.cache/bench/failover_rto-<UTC time>.json)",
    )
    g.add_argument(
        "--drill-out",
        dest="out",
        type=Path,
        default=scenarios.OUT_DIR,
        metavar="DIR",
        help="where each drill writes its report directory (.cache/drill)",
    )
    g.add_argument("--json", action="store_true", help="print the summary JSON instead of the table")
    g.add_argument(
        "--from-reports",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="run nothing: rebuild the summary from existing drill reports (dirs or report.json files)",
    )
    g.add_argument(
        "--max-gap",
        type=float,
        default=600.0,
        help="--from-reports: a drill follows the previous one if it started within this many seconds (600)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = datetime.now(UTC)
    thresholds = report.Thresholds(args.max_rto_read, args.max_rto_write)
    summary_path: Path = args.summary or BENCH_DIR / f"failover_rto-{started.strftime(_STAMP)}.json"
    doc: dict[str, Any] = {
        "bench": "failover_rto",
        "started": started.isoformat(timespec="seconds"),
        "argv": list(sys.argv[1:] if argv is None else argv),
    }

    def write(runs: list[dict[str, Any]], final: bool) -> None:
        doc["runs"] = runs
        doc["summary"] = summarise(runs, thresholds)
        doc["ended" if final else "updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(doc, indent=2, default=str))

    if args.from_reports:
        runs, sources = from_reports(args.from_reports, args.max_gap)
        if not runs:
            print(f"bench: no report.json under {', '.join(map(str, args.from_reports))}", file=sys.stderr)
            return 2
        doc.update(source="reports", reports=sources, max_gap=args.max_gap)
        interrupted = False
    else:
        try:
            if not args.sequence and (args.runs < 1 or args.after_partition_every < 0):
                raise ValueError("--runs >= 1 and --after-partition-every >= 0")
            steps = (
                parse_sequence(args.sequence)
                if args.sequence
                else plan(args.runs, args.after_partition_every)
            )
        except ValueError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        if args.dry_run:
            for i, drill in enumerate(steps, 1):
                after = f", right after {steps[i - 2]}" if i > 1 else ""
                counted = "" if drill == SITE_FAILOVER else " (not counted)"
                say(f"[{i}/{len(steps)}] {drill}{after}{counted}")
                show(equivalent_argv(drill, args))
            return 0
        options = ("warmup", "hold", "after", "workers", "write_ratio", "max_requests", "pause")
        doc.update(source="run", plan=steps, options={k: getattr(args, k) for k in options})
        try:
            runs, interrupted = run_plan(steps, args, write)
        except (preflight.PreflightError, topology.TopologyError) as exc:  # options or inventory
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # between two drills, outside one
            runs, interrupted = doc.get("runs", []), True
        doc["interrupted"] = interrupted
        doc["not_run"] = list(steps[len(runs) :])
    write(runs, True)
    summary = doc["summary"]
    print(json.dumps(doc, indent=2, default=str) if args.json else table(runs, summary))
    print(f"summary: {summary_path}", file=sys.stderr if args.json else sys.stdout)
    return 0 if summary["all_met"] and not interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
