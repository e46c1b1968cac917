"""``puente drill restore [--latest]``: the arguments of the restore drill (restore_drill)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from puente.drill import preflight, restore_drill, topology
from puente.drill.client import LoadShape
from puente.shell import CommandError


def _table(result: dict) -> str:
    f, rows = result["figures"], result["rows"]
    when = ("target", result["target_time"]) if result["mode"] == "time" else ("loss at", result["loss_at"])
    lines = [
        f"restore drill ({result['mode']}): {'PASS' if result['passed'] else 'FAIL'}",
        f"  {when[0]:<18}{when[1]}",
        f"  restore           {f['restore_seconds']} s (pgbackrest restore) + {f['recovery_seconds']} s "
        f"(WAL replay, promotion) = {f['restore_and_recovery_seconds']} s",
        f"  size restored     {f['size_bytes'] / 1e6:.1f} MB ({f['mb_per_s']} MB/s)",
        f"  WAL replayed      {f['wal_replayed_bytes']} bytes",
        f"  recovery point    {f['recovery_point_before_target_seconds']} s before the target",
        f"  rows              {rows['acknowledged_before_t']} acknowledged before, "
        f"{rows['missing']} missing, {rows['changed']} changed; "
        f"{rows['present_after_t']} of {rows['written_after_t']} later ones present",
    ]
    if "plain" in f:
        plain = f["plain"]
        lines.append(
            f"  plain restore     {plain['restore_seconds']} s of backup {plain['backup']}, "
            f"{plain['size_bytes'] / 1e6:.1f} MB ({plain['mb_per_s']} MB/s)"
        )
    if "lost_window_seconds" in f:
        lines.append(f"  writes lost over  {f['lost_window_seconds']} s before the loss")
    lines += [f"  [{'PASS' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}" for c in result["checks"]]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    opts = restore_drill.RestoreOptions(
        latest=args.latest,
        warmup=args.warmup,
        after_t=args.after_t,
        shape=LoadShape(workers=args.workers, write_ratio=args.write_ratio, max_requests=args.max_requests),
        seed=args.seed,
        repo=args.repo,
        compare_plain=args.compare_plain,
        keep_node=args.keep_node,
        max_lost_seconds=args.max_lost_seconds,
        out_dir=args.out,
        inventory=args.inventory,
    )
    try:
        result = restore_drill.run(opts)
    except (preflight.PreflightError, topology.TopologyError, CommandError) as exc:
        print(f"puente drill restore: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str) if args.json else _table(result))
    if not args.json:
        print(f"\nfull report: {result['output_dir']}/report.json")
    return 0 if result["passed"] else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "restore",
        help="point-in-time restore from the pgBackRest repositories into a fresh node, checked row by row",
    )
    p.add_argument(
        "--latest",
        action="store_true",
        help="freeze every database member at once and restore the newest archived state (the RPO)",
    )
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of load before T (10)")
    p.add_argument("--after-t", type=float, default=5.0, help="seconds of load after T (5)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--write-ratio", type=float, default=0.7)
    p.add_argument("--max-requests", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0, help="add N synthetic shipments and a full backup first")
    p.add_argument("--repo", type=int, help="repository to restore from (default: the first with it)")
    p.add_argument("--compare-plain", action="store_true", help="also time a plain restore of it")
    p.add_argument("--keep-node", action="store_true", help="leave the restore node running")
    p.add_argument("--max-lost-seconds", type=float, default=60.0, help="--latest: allowed RPO (60)")
    p.add_argument("--inventory", type=Path, action="append", help="lab inventory file(s)")
    p.add_argument("--out", type=Path, default=restore_drill.OUT_DIR, help="where reports go (.cache/drill)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.set_defaults(func=_run)
