"""``puente drill site-failover [--fault blackhole|tunnel] | tunnel-failover | node-loss --target
api|db|witness | partition | failback | baseline``,
``puente drill restore [--latest]`` (restore_cli), ``puente drill cleanup`` and ``puente drill html DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from puente.drill import (
    alerts,
    faults,
    html_report,
    options,
    preflight,
    report,
    restore_cli,
    scenarios,
    topology,
)
from puente.lab import lock


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("timing")
    g.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the fault (5)")
    g.add_argument("--hold", type=float, default=20.0, help="seconds the fault lasts (20)")
    g.add_argument("--after", type=float, default=15.0, help="seconds of load after the fault is lifted (15)")
    options.add_load_arguments(p)
    options.add_target_arguments(p)
    g = p.add_argument_group("verdict")
    g.add_argument("--max-rto-read", type=float, default=5.0, help="seconds (5)")
    g.add_argument("--max-rto-write", type=float, default=15.0, help="seconds (15)")
    g.add_argument(
        "--alerts-timeout",
        type=float,
        default=alerts.RESOLVE_TIMEOUT,
        help=f"seconds to wait for the expected alerts to resolve ({alerts.RESOLVE_TIMEOUT:g})",
    )
    options.add_output_arguments(p)


def _options(args: argparse.Namespace) -> scenarios.DrillOptions:
    for name in ("warmup", "hold", "after", "alerts_timeout"):
        if getattr(args, name) < 0:
            raise preflight.PreflightError([f"--{name.replace('_', '-')} must be >= 0"])
    return options.drill_options(
        args,
        warmup=args.warmup,
        hold=args.hold,
        after=args.after,
        thresholds=report.Thresholds(args.max_rto_read, args.max_rto_write),
        crash=getattr(args, "mode", "kill") == "kill",
        alerts_timeout=args.alerts_timeout,
    )


def _run(args: argparse.Namespace) -> int:
    with lock.exclusive():
        return _drill(args)


def _drill(args: argparse.Namespace) -> int:
    try:
        opts = _options(args)
        topo = topology.load(opts.inventory)
        if args.drill == "site-failover":
            result = scenarios.site_failover(topo, opts, args.fault)
        elif args.drill == "tunnel-failover":
            result = scenarios.tunnel_failover(topo, opts)
        elif args.drill == "baseline":
            result = scenarios.baseline(topo, opts)
        elif args.drill == "partition":
            result = scenarios.db_partition(topo, opts)
        elif args.drill == "node-loss":
            result = scenarios.node_loss(topo, opts, args.target, args.node)
        else:
            result = scenarios.failback(topo, opts)
    except (preflight.PreflightError, topology.TopologyError) as exc:
        print(f"puente drill {args.drill}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str) if args.json else report.table(result))
    if not args.json:
        print(f"\nfull report: {result['output_dir']}/report.json")
        print(f"timeline (HTML): {result['html']}")
    return 0 if result["passed"] else 1


def _cleanup(args: argparse.Namespace) -> int:
    """Remove the nft tables an interrupted drill left (the drill itself always restores)."""
    removed = faults.restore_all()
    if not removed:
        names = sorted({name for _, name in faults.TABLES})
        print(f"no nft table {' or '.join(names)}: nothing to restore")
    return 0


def _html(args: argparse.Namespace) -> int:
    """(Re)write report.html of drills already run, from their report.json (and attempts.jsonl)."""
    rc = 0
    for out in args.dirs:
        try:
            print(html_report.render_dir(out))
        except (OSError, ValueError, KeyError) as exc:
            print(f"puente drill html: {out}: {type(exc).__name__}: {exc}", file=sys.stderr)
            rc = 2
    return rc


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    drill = subparsers.add_parser(
        "drill", help="failover drills: load through the DNS name, a fault, figures"
    )
    sub = drill.add_subparsers(dest="drill", required=True, metavar="DRILL")

    p = sub.add_parser("site-failover", help="cut the on-prem site off the WAN, measure, restore")
    p.add_argument(
        "--fault",
        choices=scenarios.SITE_FAULTS,
        default="blackhole",
        help="blackhole: the host drops the site's traffic (default); tunnel: both VPN tunnels go down, "
        "the peers outside them are blackholed",
    )
    _common(p)
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "tunnel-failover",
        help="take the preferred VPN tunnel down under load: traffic must move to the other",
    )
    _common(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("baseline", help="the same load and checks without a fault (steady state)")
    _common(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("node-loss", help="lose one node (API, DB leader or witness), measure, bring it back")
    p.add_argument("--target", choices=("api", "db", "witness"), required=True)
    p.add_argument(
        "--node", help="which node (default: first on-prem API node / the DB leader / the witness)"
    )
    p.add_argument("--mode", choices=("kill", "stop"), default="kill", help="crash (kill) or clean stop")
    _common(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("failback", help="switch the DB leader back to on-prem under load, measure")
    _common(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("partition", help="isolate the on-prem database members from every other node")
    p.add_argument("--target", choices=("db",), default="db")
    _common(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("cleanup", help="remove the nft tables (puente_wan*) an interrupted drill left")
    p.set_defaults(func=_cleanup)

    restore_cli.register(sub)

    p = sub.add_parser("html", help="(re)write report.html of drills already run, from their report.json")
    p.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="a drill's output directory")
    p.set_defaults(func=_html)
