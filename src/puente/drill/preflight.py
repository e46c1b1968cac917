"""Checks run before a drill touches anything: a drill against a lab that is not up, or only half up,
stops here with every problem listed and what to do about it — never with a traceback."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable

from puente.drill import cluster, faults, topology
from puente.drill.client import DrillClient
from puente.drill.resolver import DnsError
from puente.shell import CommandError, run


class PreflightError(RuntimeError):
    """The lab is not in a state the drill can measure; the message lists each problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the drill cannot start:\n  - " + "\n  - ".join(problems))


def running_nodes() -> set[str] | None:
    """Names of the lab's running containers; None when podman itself cannot answer."""
    from puente.lab import paths, podman

    proc = run(
        ["podman", "ps", "--filter", f"label={paths.LABEL}", "--format", "json"],
        env=podman.env(),
        capture=True,
        quiet=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        return None
    out = proc.stdout or ""
    start = min([i for i in (out.find("["), out.find("{")) if i >= 0], default=-1)
    try:
        items = json.loads(out[start:]) if start >= 0 else []
    except json.JSONDecodeError:
        return None
    return {name for c in items or [] for name in c.get("Names", [])}


def require_tools(tools: Iterable[str]) -> list[str]:
    return [
        f"`{t}` is not installed (scripts/bootstrap.sh installs it)" for t in tools if shutil.which(t) is None
    ]


def check_lab(topo: topology.Topology, sites: Iterable[str], nodes: Iterable[str]) -> list[str]:
    """The sites the drill needs exist in the inventory and their nodes are running."""
    problems = []
    for site in sites:
        if not topo.has_site(site):
            problems.append(
                f"the inventory has no `{site}` site (inventories/lab/hosts.yml declares "
                f"{', '.join(sorted(topo.sites)) or 'none'}): this drill needs the two-site lab"
            )
    if problems:
        return problems
    running = running_nodes()
    if running is None:
        return ["podman does not answer (is the lab's containers.conf there?): run `puente lab status`"]
    wanted = sorted(set(nodes))
    down = [n for n in wanted if n not in running]
    if down and len(down) == len(wanted):
        problems.append("the lab is not up (no node of the drill is running): run `puente lab up` first")
    elif down:
        problems.append(
            f"lab nodes not running: {', '.join(down)} (`puente lab status`, then `puente lab up`)"
        )
    return problems


# Seconds an API that answers 503 on /readyz gets to become ready before the drill refuses to start.
READY_WAIT_SECONDS = 20.0


def check_service(topo: topology.Topology, client: DrillClient, need_db: bool = True) -> list[str]:
    """DNS answers the API's name, the API answers /readyz through it, TLS verifies, Patroni has a leader,
    no WAN cut is left over."""
    problems = []
    cfg = client.config
    if cfg.scheme == "https" and (cfg.ca_file is None or not cfg.ca_file.is_file()):
        problems.append(f"the lab CA {cfg.ca_file} is missing (made by the gateway role's converge)")
    try:
        answer = client.resolver.resolve(cfg.name)
    except DnsError as exc:
        return [*problems, f"DNS: {exc} — is the dns node up and converged (playbooks/dns.yml)?"]
    if not problems:
        try:
            status, body = client.get_json("/readyz")
            deadline = time.monotonic() + READY_WAIT_SECONDS
            while status == 503 and time.monotonic() < deadline:
                # answering but not ready: right after the set-up switchover the API's sessions were
                # cut and HAProxy's leader check needs `rise` passes; give it a moment, not forever
                time.sleep(1.0)
                status, body = client.get_json("/readyz")
            if status != 200:
                problems.append(
                    f"https://{cfg.name}/readyz via {answer.addresses[0]} answered {status}: "
                    f"{body.get('detail') or body}"
                )
        except Exception as exc:  # any transport failure is a preflight finding, reported in one line
            problems.append(
                f"https://{cfg.name}/readyz via {answer.addresses[0]}: {type(exc).__name__}: {exc}"
            )
    if need_db and topo.db_members:
        try:
            members = cluster.patroni_cluster(topo.db_members)
            leaders = [m["name"] for m in members if m.get("role") in ("leader", "master", "primary")]
            if len(leaders) != 1:
                problems.append(
                    f"Patroni reports {len(leaders)} leaders ({leaders}): the cluster is not settled"
                )
        except CommandError as exc:
            problems.append(f"Patroni REST does not answer on any member: {exc.output or exc}")
    return problems


def check_no_cut(cut: faults.WanCut | faults.NodePartition | faults.TunnelCut) -> list[str]:
    if cut.active():
        return [
            f"a WAN cut or partition is still in place (nft table {faults.TABLE_NAME}): "
            "`puente drill cleanup` removes it"
        ]
    return []
