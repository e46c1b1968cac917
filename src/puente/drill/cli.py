"""``puente drill site-failover | node-loss --target api|db|witness | partition | failback | baseline``,
``puente drill restore [--latest]`` (restore_cli), ``puente drill cleanup`` and ``puente drill html DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from puente.drill import faults, html_report, preflight, report, restore_cli, scenarios, topology
from puente.drill.client import LoadShape


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("timing")
    g.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the fault (5)")
    g.add_argument("--hold", type=float, default=20.0, help="seconds the fault lasts (20)")
    g.add_argument("--after", type=float, default=15.0, help="seconds of load after the fault is lifted (15)")
    g = p.add_argument_group("load")
    g.add_argument("--workers", type=int, default=4, help="concurrent clients (4)")
    g.add_argument("--write-ratio", type=float, default=0.3, help="share of POSTs in the mix (0.3)")
    g.add_argument("--max-requests", type=int, default=20000, help="upper bound on logical requests")
    g = p.add_argument_group("target")
    g.add_argument("--dns-server", help="failover DNS to resolve through (default: the inventory's dns node)")
    g.add_argument("--dns-port", type=int, default=53)
    g.add_argument("--name", dest="api_name", help="the API's DNS name (default: api.<puente_dns_zone>)")
    g.add_argument("--port", type=int, default=443)
    g.add_argument(
        "--ca", type=Path, default=topology.CA_FILE, help=f"CA to verify TLS with ({topology.CA_FILE})"
    )
    g.add_argument("--inventory", type=Path, action="append", help="lab inventory file(s) (inventories/lab)")
    g = p.add_argument_group("verdict")
    g.add_argument("--max-rto-read", type=float, default=5.0, help="seconds (5)")
    g.add_argument("--max-rto-write", type=float, default=15.0, help="seconds (15)")
    p.add_argument("--out", type=Path, default=scenarios.OUT_DIR, help="where reports go (.cache/drill)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")


def _options(args: argparse.Namespace) -> scenarios.DrillOptions:
    for name in ("warmup", "hold", "after"):
        if getattr(args, name) < 0:
            raise preflight.PreflightError([f"--{name} must be >= 0"])
    if args.workers < 1 or not 0 <= args.write_ratio <= 1 or args.max_requests < 1:
        raise preflight.PreflightError(["--workers >= 1, 0 <= --write-ratio <= 1, --max-requests >= 1"])
    return scenarios.DrillOptions(
        warmup=args.warmup,
        hold=args.hold,
        after=args.after,
        shape=LoadShape(workers=args.workers, write_ratio=args.write_ratio, max_requests=args.max_requests),
        dns_server=args.dns_server,
        dns_port=args.dns_port,
        api_name=args.api_name,
        port=args.port,
        ca_file=args.ca,
        thresholds=report.Thresholds(args.max_rto_read, args.max_rto_write),
        out_dir=args.out,
        inventory=args.inventory,
        crash=getattr(args, "mode", "kill") == "kill",
    )


def _run(args: argparse.Namespace) -> int:
    try:
        opts = _options(args)
        topo = topology.load(opts.inventory)
        if args.drill == "site-failover":
            result = scenarios.site_failover(topo, opts)
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
        print(f"no nft table {faults.TABLE_NAME}: nothing to restore")
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

    p = sub.add_parser("cleanup", help="remove the nft tables (puente_wan) an interrupted drill left")
    p.set_defaults(func=_cleanup)

    restore_cli.register(sub)

    p = sub.add_parser("html", help="(re)write report.html of drills already run, from their report.json")
    p.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="a drill's output directory")
    p.set_defaults(func=_html)
