"""``puente drill restore [--latest]``: the arguments of the restore drill (restore_drill); the load, target
and output options are every drill's (options)."""

from __future__ import annotations

import argparse
import json
import sys

from puente.drill import options, preflight, restore_drill, topology
from puente.lab import lock
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
    with lock.exclusive():
        return _restore(args)


def _restore(args: argparse.Namespace) -> int:
    try:
        if args.warmup < 0 or args.after_t < 0:
            raise preflight.PreflightError(["--warmup and --after-t must be >= 0"])
        opts = restore_drill.RestoreOptions(
            latest=args.latest,
            after_t=args.after_t,
            seed=args.seed,
            repo=args.repo,
            compare_plain=args.compare_plain,
            keep_node=args.keep_node,
            max_lost_seconds=args.max_lost_seconds,
            drill=options.drill_options(args, warmup=args.warmup),
        )
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
    p.add_argument("--seed", type=int, default=0, help="add N synthetic shipments and a full backup first")
    p.add_argument("--repo", type=int, help="repository to restore from (default: the first with it)")
    p.add_argument("--compare-plain", action="store_true", help="also time a plain restore of it")
    p.add_argument("--keep-node", action="store_true", help="leave the restore node running")
    p.add_argument("--max-lost-seconds", type=float, default=60.0, help="--latest: allowed RPO (60)")
    # mostly writes: the rows the restore is checked with
    options.add_load_arguments(p, write_ratio=0.7)
    options.add_target_arguments(p)
    options.add_output_arguments(p)
    p.set_defaults(func=_run)
