"""The drills' shared command-line options and the ``DrillOptions`` they make: the load, the target (DNS,
name, port, CA, inventory) and where reports go. One home for ``puente drill <scenario>`` (cli) and
``puente drill restore`` (restore_cli), which add only their own options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from puente.drill import preflight, scenarios, topology
from puente.drill.client import LoadShape


def add_load_arguments(p: argparse.ArgumentParser, *, write_ratio: float = 0.3) -> None:
    g = p.add_argument_group("load")
    g.add_argument("--workers", type=int, default=4, help="concurrent clients (4)")
    g.add_argument(
        "--write-ratio", type=float, default=write_ratio, help=f"share of POSTs in the mix ({write_ratio:g})"
    )
    g.add_argument("--max-requests", type=int, default=20000, help="upper bound on logical requests")


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument("--dns-server", help="failover DNS to resolve through (default: the inventory's dns node)")
    g.add_argument("--dns-port", type=int, default=53)
    g.add_argument("--name", dest="api_name", help="the API's DNS name (default: api.<puente_dns_zone>)")
    g.add_argument("--port", type=int, default=443)
    g.add_argument(
        "--ca", type=Path, default=topology.CA_FILE, help=f"CA to verify TLS with ({topology.CA_FILE})"
    )
    g.add_argument("--inventory", type=Path, action="append", help="lab inventory file(s) (inventories/lab)")


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=scenarios.OUT_DIR, help="where reports go (.cache/drill)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")


def drill_options(args: argparse.Namespace, **fields: Any) -> scenarios.DrillOptions:
    """The shared arguments, checked, as DrillOptions; ``fields``: the drill's own (timing, verdict)."""
    if args.workers < 1 or not 0 <= args.write_ratio <= 1 or args.max_requests < 1:
        raise preflight.PreflightError(["--workers >= 1, 0 <= --write-ratio <= 1, --max-requests >= 1"])
    return scenarios.DrillOptions(
        shape=LoadShape(workers=args.workers, write_ratio=args.write_ratio, max_requests=args.max_requests),
        dns_server=args.dns_server,
        dns_port=args.dns_port,
        api_name=args.api_name,
        port=args.port,
        ca_file=args.ca,
        out_dir=args.out,
        inventory=args.inventory,
        **fields,
    )
