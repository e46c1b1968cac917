"""The drills: load through the failover name, one fault, the fault lifted, the figures.

Every drill has the same shape — preflight, baseline, load, fault at ``fault_at``, hold, restore at
``restore_at``, observe, stop the load, let the cluster settle, read back every acknowledged write,
count what the database holds, analyse — so their reports compare.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from puente.drill import (
    alerts,
    cluster,
    dnswatch,
    faults,
    html_report,
    preflight,
    report,
    timeline,
    topology,
    tunnelwatch,
)
from puente.drill.attempts import AttemptLog, dump_jsonl
from puente.drill.client import ClientConfig, DrillClient, Load, LoadShape
from puente.drill.resolver import DnsError
from puente.keys.remote import create as create_key
from puente.lab import paths
from puente.shell import ROOT, CommandError

OUT_DIR = ROOT / ".cache" / "drill"


@dataclass
class DrillOptions:
    warmup: float = 5.0
    hold: float = 20.0
    after: float = 15.0
    settle_timeout: float = 90.0
    labels_timeout: float = 60.0
    shape: LoadShape = field(default_factory=LoadShape)
    dns_server: str | None = None
    dns_port: int = 53
    api_name: str | None = None
    port: int = 443
    scheme: str = "https"
    ca_file: Path = topology.CA_FILE
    thresholds: report.Thresholds = field(default_factory=report.Thresholds)
    out_dir: Path = OUT_DIR
    inventory: list[Path] | None = None
    crash: bool = True
    sqs_python: str = "/opt/moto/venv/bin/python"  # role moto_sqs: moto_sqs_install_root + /venv
    sqs_region: str = "eu-west-1"
    sqs_dlq: str = "puente-shipments-dlq.fifo"
    alerts_timeout: float = alerts.RESOLVE_TIMEOUT


def say(msg: str) -> None:
    print(f"drill: {msg}", file=sys.stderr, flush=True)


def _client(topo: topology.Topology, opts: DrillOptions, log: AttemptLog) -> DrillClient:
    """The drill's client, authenticated with a key of its own made as an operator makes one
    (``puente keys create``): the drill's rows are that client's."""
    if not (opts.dns_server or topo.dns_servers):
        raise preflight.PreflightError(["the inventory has no `dns` group and no --dns-server was given"])
    cfg = ClientConfig(
        name=opts.api_name or topo.api_name,
        dns_server=opts.dns_server or topo.dns_servers[0],
        dns_port=opts.dns_port,
        port=opts.port,
        scheme=opts.scheme,
        ca_file=opts.ca_file,
        site_of_address=dict(topo.edges),
    )
    say(f"an API key for client {cfg.client_id}")
    cfg.api_key = create_key(cfg.client_id, [paths.INVENTORY], label="drill")
    return DrillClient(cfg, log)


def wan_cut(
    topo: topology.Topology, site: str = topology.PRIMARY_SITE, *, tunnel_peers: bool = True
) -> faults.WanCut:
    """The blackhole of ``site``; ``tunnel_peers=False`` leaves out the sites it reaches through the VPN's
    tunnels (a tunnel fault takes those down)."""
    import ipaddress

    inside = ipaddress.IPv4Network(topo.sites[site])
    skip = set() if tunnel_peers else set(topo.through_tunnels(site))
    peers = [cidr for name, cidr in sorted(topo.sites.items()) if name != site and name not in skip]
    exempt = [ip for ip in topo.dns_servers if ipaddress.IPv4Address(ip) in inside]
    return faults.WanCut(isolate=str(inside), peers=peers, exempt=exempt)


class FaultWatch(Protocol):
    """What a fault watches besides the load (e.g. the VPN's tunnels), sampled from the start of the load
    to its end. Times are the drill's clock (monotonic) until ``findings``, which gets drill seconds."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def may_lift(self, fault_at: float) -> bool:
        """After the hold: may the fault be lifted yet (else the hold goes on, bounded)?"""
        ...

    def recovered(self, restore_at: float) -> bool:
        """After the lift and the ``after`` period: may the load stop yet (else it goes on, bounded)?"""
        ...

    def findings(
        self, t0: float, fault_at: float, restore_at: float, ended_at: float
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        """(report key, its section, checks)."""
        ...


@dataclass
class Fault:
    """What one drill does: ``inject`` at fault_at, ``lift`` at restore_at (both print their commands)."""

    name: str
    inject: Callable[[], None]
    lift: Callable[[], None]
    needs_sites: tuple[str, ...]
    expect_failover: bool
    extra_problems: Callable[[], list[str]] = lambda: []
    late_key: bool = False
    """Create a second key just before the fault and expect it to work, at the end of the fault, on the
    site that took over (keys live in the replicated database)."""
    alerts: tuple[alerts.Expect, ...] = ()
    """What the fault must raise (and must not) in the sites' Alertmanagers, when the lab has monitoring."""
    kind: str | None = None
    """How the fault is made, when a drill has several ways (site-failover: blackhole or tunnel)."""
    watch: FaultWatch | None = None
    verdict: Callable[[dict[str, Any]], list[dict[str, Any]]] = lambda result: []
    """Checks of the drill's own, on the finished report (it may add its figures to it)."""


def run_drill(
    topo: topology.Topology, opts: DrillOptions, fault: Fault, expect_recovery: bool = True
) -> dict[str, Any]:
    """Preflight, then the drill; the fault is always lifted, even on Ctrl-C."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = opts.out_dir / f"{stamp}-{fault.name}"
    problems = preflight.require_tools(["podman", "nft"])
    nodes = [n for s in fault.needs_sites for n in topo.nodes_of(s)]
    problems += preflight.check_lab(topo, fault.needs_sites, nodes)
    if problems:
        raise preflight.PreflightError(problems)
    log = AttemptLog()
    client = _client(topo, opts, log)
    problems = preflight.check_service(topo, client) + fault.extra_problems()
    if problems:
        client.close()
        raise preflight.PreflightError(problems)
    members_before = cluster.patroni_cluster(topo.db_members) if topo.db_members else []
    if fault.expect_failover and topo.db_members and not cluster.has_sync_standby(members_before):
        # In synchronous mode Patroni promotes only the synchronous standby: right after an earlier
        # drill (a member rejoining) there may be none yet, and this drill would measure nothing.
        say(f"waiting up to {opts.settle_timeout:g} s for a synchronous standby (Patroni /cluster)")
        members_before = cluster.wait_settled(topo.db_members, opts.settle_timeout, need_sync=True)
        if not cluster.has_sync_standby(members_before):
            client.close()
            raise preflight.PreflightError(
                [
                    "Patroni has no synchronous standby: a failover could promote no one "
                    f"(members: {[(m.get('name'), m.get('role'), m.get('state')) for m in members_before]})"
                ]
            )
    dlq_before = _dead_letters(topo, opts)
    out.mkdir(parents=True, exist_ok=True)
    hold = opts.hold
    must_fire = [e.within for e in fault.alerts if e.fires] if topo.monitoring_nodes else []
    if must_fire and hold < max(must_fire):
        # an alert whose condition is the fault fires only if the fault lasts its whole delay
        say(f"holding the fault {max(must_fire):g} s instead of {hold:g} s: the alerts' time to fire")
        hold = max(must_fire)

    clock = client.clock
    t0 = clock()
    t0_unix = time.time()  # the wall clock of t = 0, to place Alertmanager's timestamps on the timeline
    say(
        f"client {client.config.client_id} -> https://{client.config.name} (DNS {client.config.dns_server}); "
        f"warm-up {opts.warmup:g} s, fault {hold:g} s, then {opts.after:g} s; results in {out}"
    )
    load = Load(client, opts.shape)
    sampler = cluster.PrimarySampler(topo.db_members) if topo.db_members else None
    dns_watch = dnswatch.DnsSampler(
        client.config.dns_server, client.config.dns_port, client.config.name, clock=clock
    )
    lifted = False
    late: dict[str, Any] | None = None
    waits: dict[str, float] = {}
    try:
        load.start()
        if fault.watch:
            fault.watch.start()
        # both sampled from the start, so the page shows the steady state before the fault too
        dns_watch.start()
        if sampler:
            sampler.start()
        warm_until = clock() + opts.warmup
        late_key = ""
        if fault.late_key:
            say("a second API key, just before the fault")
            late_key = create_key(f"{client.config.client_id}-late", [paths.INVENTORY], label="drill")
            late = {"created_at": clock() - t0}
        time.sleep(max(0.0, warm_until - clock()))
        fault_at = clock() - t0
        say(f"t={fault_at:.1f} s: {fault.name}")
        fault.inject()
        time.sleep(hold)
        if fault.watch:
            watch = fault.watch
            waits["hold_extended"] = _wait_for(
                "the fault's effect (fault.watch.may_lift)",
                lambda: watch.may_lift(t0 + fault_at),
                opts.settle_timeout,
                clock,
            )
        if late is not None:
            late.update(_late_key_probe(client, late_key))
            late["checked_at"] = clock() - t0
        restore_at = clock() - t0
        say(f"t={restore_at:.1f} s: lifting the fault")
        fault.lift()
        lifted = True
        time.sleep(opts.after)
        if fault.watch:
            watch = fault.watch
            waits["after_extended"] = _wait_for(
                "the recovery (fault.watch.recovered)",
                lambda: watch.recovered(t0 + restore_at),
                opts.settle_timeout,
                clock,
            )
    finally:
        if not lifted:
            fault.lift()
        load.stop()
        if fault.watch:
            fault.watch.stop()
        dns_samples = dns_watch.stop()
        if sampler:
            sampler.stop()
    ended_at = clock() - t0
    rounds = [(t - t0, names) for t, names in sampler.rounds] if sampler else None
    max_leaders = (
        max((len(p) for t, p in rounds if t >= fault_at), default=None) if rounds is not None else None
    )
    say(f"t={ended_at:.1f} s: load stopped after {len(log)} attempts; waiting for the cluster to settle")

    members_after = (
        cluster.wait_settled(
            topo.db_members, opts.settle_timeout, need_sync=cluster.has_sync_standby(members_before)
        )
        if topo.db_members
        else []
    )
    # a member that did not come back says why in its journal: kept with the report (and the test's failure)
    diagnosis = cluster.diagnose(members_after, topo.db_members) if topo.db_members else {}
    for name in diagnosis:
        say(f"{name} is not back after {opts.settle_timeout:g} s: its journal's tail is in the report")
    ids = sorted({i for s in report.acknowledged(log.snapshot()).values() for i in s})
    say(f"reading back {len(ids)} acknowledged shipments")
    for shipment_id in ids:
        client.verify(shipment_id)
    db = _db_facts(topo, opts, client.config.client_id, members_after, dlq_before)
    seen = (
        alerts.collect(
            topo.monitoring_nodes,
            fault.alerts,
            t0_unix=t0_unix,
            fault_at=fault_at,
            restore_at=restore_at,
            timeout=opts.alerts_timeout,
            say=say,
        )
        if topo.monitoring_nodes
        else None
    )
    client.close()
    log.close()
    attempts = [replace(a, started=a.started - t0, ended=a.ended - t0) for a in log.snapshot()]
    result = report.analyse(
        attempts,
        scenario=fault.name,
        fault_at=fault_at,
        restore_at=restore_at,
        ended_at=ended_at,
        cluster_before=members_before,
        cluster_after=members_after,
        max_leaders_seen=max_leaders,
        db=db,
        thresholds=opts.thresholds,
        expect_failover=fault.expect_failover,
        expect_recovery=expect_recovery,
    )
    result["client_id"] = client.config.client_id
    result["api_name"] = client.config.name
    if fault.kind:
        result["fault"] = fault.kind
    if rounds is not None:
        result["primaries_seen_during_fault"] = sorted(
            {n for t, names in rounds if fault_at <= t <= restore_at for n in names}
        )
    if fault.watch:
        key, section, watch_checks = fault.watch.findings(t0, fault_at, restore_at, ended_at)
        section["waits"] = waits
        result[key] = section
        result["checks"] += watch_checks
    result["cluster_before"] = members_before
    result["cluster_after"] = members_after
    if diagnosis:
        result["cluster_diagnosis"] = diagnosis
    result["checks"] += fault.verdict(result)
    result["passed"] = all(c["ok"] for c in result["checks"])
    if late is not None:
        result["late_key"] = late
        result["checks"].append(
            {
                "name": "key_created_before_the_cut_works_after_it",
                "ok": late.get("status") == 200 and late.get("site") != topology.PRIMARY_SITE,
                "detail": f"key created at t={late['created_at']:.1f} s (fault at t={fault_at:.1f} s): "
                f"{late.get('status')} from site {late.get('site')} at t={late['checked_at']:.1f} s",
            }
        )
        result["passed"] = all(c["ok"] for c in result["checks"])
    if seen is not None:
        result["alerts"] = seen["alerts"]
        result["monitoring"] = seen["monitoring"]
        result["checks"] += seen["checks"]
        result["passed"] = all(c["ok"] for c in result["checks"])
    result["timeline"]["t0_unix"] = round(t0_unix, 3)
    result["series"] = timeline.series(
        attempts,
        ended_at=ended_at,
        dns=[replace(d, t=d.t - t0) for d in dns_samples],
        leaders=rounds,
        site_of_address=topo.edges,
        site_of_member={m.name: m.site for m in topo.db_members},
    )
    dump_jsonl(attempts, out / "attempts.jsonl")
    (out / "report.json").write_text(json.dumps(result, indent=2, default=str))
    result["html"] = str(html_report.write(out, result))
    result["output_dir"] = str(out)
    return result


def _wait_for(what: str, ready: Callable[[], bool], timeout: float, clock: Callable[[], float]) -> float:
    """Poll ``ready`` once a second for at most ``timeout`` s; the seconds waited."""
    start = clock()
    if ready():
        return 0.0
    say(f"waiting up to {timeout:g} s for {what}")
    while clock() - start < timeout:
        time.sleep(1.0)
        if ready():
            break
    waited = round(clock() - start, 1)
    say(f"waited {waited:g} s for {what}")
    return waited


def _late_key_probe(client: DrillClient, api_key: str) -> dict[str, Any]:
    """One authenticated read with ``api_key`` through the failover name (retried for a few seconds)."""
    status: int | None = None
    site: str | None = None
    error = None
    for _ in range(5):
        try:
            status, _body, site = client.probe("/v1/shipments?limit=1", api_key)
        except (DnsError, httpx.HTTPError) as exc:  # a failed probe is a finding of the report
            error = f"{type(exc).__name__}: {exc}"
            status = None
        if status == 200:
            break
        time.sleep(1)
    return {"status": status, "site": site, "error": error}


def _db_facts(
    topo: topology.Topology,
    opts: DrillOptions,
    client_id: str,
    members: list[dict[str, Any]],
    dlq_before: int | None,
) -> report.DbFacts | None:
    leader = next((m["name"] for m in members if m.get("role") in report.LEADER_ROLES), None)
    if leader is None:
        say("no leader after the drill: the database could not be checked")
        return None
    try:
        facts = cluster.wait_labels(leader, topo.db_name, client_id, opts.labels_timeout)
    except (CommandError, ValueError) as exc:
        say(f"database facts unavailable: {str(exc).splitlines()[0]}")
        return None
    after = _dead_letters(topo, opts)
    if after is not None and dlq_before is not None:
        facts["dead_lettered"] = max(after - dlq_before, 0)  # this drill's, not an earlier one's
    return report.DbFacts.from_dict(facts)


def _dead_letters(topo: topology.Topology, opts: DrillOptions) -> int | None:
    """Messages in the SQS dead-letter queue(s) now; None when there is none or it cannot be read."""
    total: int | None = None
    for node in topo.sqs_nodes:
        try:
            n = cluster.sqs_dead_lettered(
                node, opts.sqs_python, f"http://{topo.node_ips[node]}:5000", opts.sqs_region, opts.sqs_dlq
            )
        except (CommandError, ValueError, KeyError) as exc:
            say(f"dead-letter queue on {node} unreadable: {str(exc).splitlines()[0]}")
            return None
        total = (total or 0) + n
    return total


# -- the drills -------------------------------------------------------------------------------------------


def _require_lab(topo: topology.Topology, sites: tuple[str, ...]) -> None:
    """The part of the preflight that must pass before a drill even asks the cluster who leads."""
    problems = preflight.require_tools(["podman", "nft"])
    problems += preflight.check_lab(
        topo, sites, [n for s in sites if topo.has_site(s) for n in topo.nodes_of(s)]
    )
    if problems:
        raise preflight.PreflightError(problems)


def baseline(topo: topology.Topology, opts: DrillOptions) -> dict[str, Any]:
    """The same load and checks with no fault: the steady state a drill's figures compare with (and a
    safe smoke test of the drill itself against a lab others are using)."""
    needs = (topology.PRIMARY_SITE,)
    _require_lab(topo, needs)
    fault = Fault("baseline", lambda: None, lambda: None, needs, expect_failover=False)
    return run_drill(topo, opts, fault)


# What the surviving site must say within 30 s of the cut (issue 12), and take back once the site is back.
SITE_FAILOVER_ALERTS = (
    alerts.Expect("PuenteSiteDown", {"site": topology.PRIMARY_SITE}, resolves_after_restore=True),
    alerts.Expect("PuenteDatabaseLeaderChanged"),
)


def node_loss_alerts(target: str, site: str) -> tuple[alerts.Expect, ...]:
    """A lost DB leader: the leader changed, no site down. A lost witness (a site of one node): that site
    down, no leader change. A lost API node: neither."""
    if target == "db":
        return (alerts.Expect("PuenteDatabaseLeaderChanged"), alerts.Expect("PuenteSiteDown", fires=False))
    if target == "witness":
        return (
            alerts.Expect("PuenteSiteDown", {"site": site}, resolves_after_restore=True),
            alerts.Expect("PuenteDatabaseLeaderChanged", fires=False),
        )
    return (
        alerts.Expect("PuenteSiteDown", fires=False),
        alerts.Expect("PuenteDatabaseLeaderChanged", fires=False),
    )


SITE_FAULTS = ("blackhole", "tunnel")


def site_failover(topo: topology.Topology, opts: DrillOptions, fault: str = "blackhole") -> dict[str, Any]:
    """Cut the on-prem site off: ``blackhole``, the host drops everything between it and the other sites
    (and the drill's client); ``tunnel``, both VPN tunnels go down as a WAN failure takes them, plus the
    blackhole for the peers the site does not reach through them (the witness site, the client)."""
    if fault not in SITE_FAULTS:
        raise preflight.PreflightError([f"--fault must be one of {', '.join(SITE_FAULTS)}, got {fault!r}"])
    needs = (topology.PRIMARY_SITE, topology.SECONDARY_SITE)
    _require_lab(topo, needs)
    watch = None
    if fault == "tunnel":
        tunnels, gateway, bridge = _vpn(topo)
        down = faults.TunnelCut(bridge, gateway.wan_ip, [t.outside for t in tunnels])
        rest = wan_cut(topo, tunnel_peers=False)
        cuts: list[faults.WanCut | faults.NodePartition | faults.TunnelCut] = [down, rest]
        watch = tunnelwatch.TunnelWatch(gateway.name, [t.name for t in tunnels])
    else:
        cuts = [wan_cut(topo)]
    _leader_to_primary_site(topo)

    def inject() -> None:
        for c in cuts:
            c.cut()

    def lift() -> None:
        for c in cuts:
            c.restore()

    drill = Fault(
        "site-failover",
        inject,
        lift,
        needs,
        expect_failover=True,
        extra_problems=lambda: (
            [p for c in cuts for p in preflight.check_no_cut(c)] + (_tunnels_up(watch) if watch else [])
        ),
        late_key=True,
        alerts=SITE_FAILOVER_ALERTS,
        kind=fault,
        watch=watch,
    )
    return run_drill(topo, opts, drill)


def tunnel_failover(topo: topology.Topology, opts: DrillOptions) -> dict[str, Any]:
    """Take the tunnel that carries the traffic down under load (a WAN path or AWS endpoint failure): the
    traffic must move to the other tunnel, nothing acknowledged may be lost, no answer may be a 5xx, and
    the database must not fail over for it. After the restore the cut tunnel must carry the traffic again.

    The carrying tunnel is the preferred one, tunnel1, where the kernel does IPsec (production: policy
    priorities). The lab's user-space ESP (kernel-libipsec) ignores those priorities and sends by the
    newest CHILD_SA (roles/vpn/README.md): the drill asks the gateway which tunnel sends and cuts that
    one."""
    needs = (topology.PRIMARY_SITE, topology.SECONDARY_SITE)
    _require_lab(topo, needs)
    tunnels, gateway, bridge = _vpn(topo)
    if len(tunnels) < 2:
        raise preflight.PreflightError(
            [f"tunnel-failover needs two tunnels (vpn_tunnels has {len(tunnels)}): nothing to fail over to"]
        )
    # the designed state, as site-failover's: the leader on-prem, its synchronous standby across the
    # tunnels (a leader in the cloud puts the on-prem HAProxy's leader check across them too)
    _leader_to_primary_site(topo)
    sending = tunnelwatch.carrier(gateway.name, [t.name for t in tunnels])
    preferred = next((t for t in tunnels if t.name == sending), tunnels[0])
    spare = next(t for t in tunnels if t is not preferred)
    say(
        f"{gateway.name} sends by {sending or 'no tunnel (nothing sent in 3 s)'}: cutting {preferred.name} "
        f"({preferred.outside}), {spare.name} must take over"
    )
    cut = faults.TunnelCut(bridge, gateway.wan_ip, [preferred.outside])
    watch = tunnelwatch.TunnelWatch(gateway.name, [preferred.name], [spare.name])
    drill = Fault(
        "tunnel-failover",
        cut.cut,
        cut.restore,
        needs,
        expect_failover=False,
        extra_problems=lambda: preflight.check_no_cut(cut) + _tunnels_up(watch),
        kind="tunnel",
        watch=watch,
        verdict=no_failover_verdict,
    )
    return run_drill(topo, opts, drill)


def no_failover_verdict(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A fault the database should not notice: no answer 5xx (503 included: nothing was down), and the
    leader, its timeline and the members answering /primary unchanged (the sync standby is reported)."""
    fivexx = Counter(a for a in _statuses(result) if a >= 500)
    noticed = report.patroni_noticed(
        result["cluster_before"], result["cluster_after"], result.get("primaries_seen_during_fault", [])
    )
    result["patroni"] = noticed
    return [
        {
            "name": "no_5xx",
            "ok": not fivexx,
            "detail": f"{sum(fivexx.values())} answers 5xx"
            + (f": {dict(sorted(fivexx.items()))}" if fivexx else ""),
        },
        {
            "name": "no_database_failover",
            "ok": noticed["leader_unchanged"],
            "detail": f"leader {noticed['leader_before']} -> {noticed['leader_after']}, timeline "
            f"{noticed['timeline_before']} -> {noticed['timeline_after']}, /primary during the fault: "
            f"{noticed['primaries_seen_during_fault']}; sync standby {noticed['sync_standby_before']} -> "
            f"{noticed['sync_standby_after']}",
        },
    ]


def _statuses(result: dict[str, Any]) -> list[int]:
    """HTTP statuses of the load's failed attempts, from the report's error kinds (``http_<code>``)."""
    out = []
    for kind, n in result["errors"]["attempts"].items():
        if kind.startswith("http_") and kind[5:].isdigit():
            out += [int(kind[5:])] * n
    return out


def _vpn(topo: topology.Topology) -> tuple[list[topology.Tunnel], topology.VpnGateway, str]:
    """The tunnels, the primary site's VPN gateway and the WAN's bridge, or why a tunnel fault cannot run."""
    site = topology.PRIMARY_SITE
    problems = []
    if not topo.tunnels:
        problems.append("the inventory has no vpn_tunnels (inventories/lab/group_vars/lab/overrides.yml)")
    gateway = topo.vpn_gateways.get(site)
    if gateway is None:
        problems.append(f"the {site} site has no VPN gateway (a node with lab_wan_address in hosts.yml)")
    if not topo.wan_network:
        problems.append(
            "the inventory declares no WAN (lab_wan_network): the sites are not joined by tunnels"
        )
    if problems or gateway is None or topo.wan_network is None:
        raise preflight.PreflightError(problems)
    return topo.tunnels, gateway, _bridge_of(topo.wan_network)


def _bridge_of(network: str) -> str:
    from puente.lab import podman

    found = podman.inspect("network", [network])
    name = found[0].get("network_interface") if found else None
    if not name:
        raise preflight.PreflightError([f"podman network {network} has no bridge: run `puente lab up` first"])
    return str(name)


def _tunnels_up(watch: tunnelwatch.TunnelWatch) -> list[str]:
    """Every tunnel of the drill ESTABLISHED/INSTALLED on the gateway before the fault."""
    sample = tunnelwatch.probe(watch.node, time.monotonic())
    down = [n for n in watch.names if sample is None or not sample.up.get(n, False)]
    if not down:
        return []
    return [
        f"tunnel(s) {', '.join(down)} not ESTABLISHED/INSTALLED on {watch.node} (`puente lab status`): "
        "a tunnel fault would measure nothing"
    ]


def db_partition(topo: topology.Topology, opts: DrillOptions) -> dict[str, Any]:
    """Cut the primary site's database members off from every other node (their API and HAProxy
    included) while the API nodes stay up. With a cloud site the leader must move there; without one,
    the API must answer 503 (never a 500, never a write it cannot keep) until the partition heals."""
    site = topology.PRIMARY_SITE
    _require_lab(topo, (site,))
    addresses = [m.ip for m in topo.db_members if m.site == site]
    if not addresses:
        raise preflight.PreflightError([f"no `postgresql` member on the {site} site to partition"])
    part = faults.NodePartition(addresses)
    two_sites = topo.has_site(topology.SECONDARY_SITE)
    needs = (site, topology.SECONDARY_SITE) if two_sites else (site,)
    if two_sites:
        _leader_to_primary_site(topo)  # else the partition cuts off replicas only and measures nothing
    fault = Fault(
        "partition-db",
        part.cut,
        part.restore,
        needs,
        expect_failover=two_sites,
        extra_problems=lambda: preflight.check_no_cut(part),
    )
    return run_drill(topo, opts, fault, expect_recovery=two_sites)


def node_loss(
    topo: topology.Topology, opts: DrillOptions, target: str, node: str | None = None
) -> dict[str, Any]:
    site = topology.PRIMARY_SITE
    _require_lab(topo, (site,))
    if target == "db":
        if node is None:
            try:
                members = cluster.patroni_cluster(topo.db_members) if topo.db_members else []
            except CommandError as exc:
                raise preflight.PreflightError(
                    [f"Patroni REST does not answer: {exc.output or exc}"]
                ) from exc
            node = next((m["name"] for m in members if m.get("role") in report.LEADER_ROLES), None)
            if node is None:
                raise preflight.PreflightError(["no Patroni leader to take down"])
        expect_failover = True
        ttl = cluster.patroni_ttl(topo.db_members)
        if opts.crash and ttl is not None and opts.hold < ttl + 10:
            # a crashed leader keeps its key until the TTL expires: a shorter fault measures nothing
            say(f"Patroni ttl is {ttl} s: holding the fault {ttl + 10} s instead of {opts.hold:g} s")
            opts.hold = float(ttl + 10)
    elif target == "api":
        node = node or next(iter(topo.api_nodes.get(site, [])), None)
        expect_failover = False
    else:  # witness
        node = node or next(iter(topo.witness_nodes), None)
        expect_failover = False
    if node is None or node not in topo.nodes:
        raise preflight.PreflightError([f"no {target} node to take down (inventory: {sorted(topo.nodes)})"])
    target_node = node
    fault = Fault(
        f"node-loss-{target}",
        lambda: faults.stop_node(target_node, crash=opts.crash),
        lambda: faults.start_node(target_node),
        tuple(sorted({topology.PRIMARY_SITE, topo.nodes[target_node]})),
        expect_failover=expect_failover,
        alerts=node_loss_alerts(target, topo.nodes[target_node]),
    )
    return run_drill(topo, opts, fault)


PATRONI_CONFIG = "/etc/patroni/config.yml"
# Runs inside the leader's node: Patroni's REST write endpoints need the credentials of its own config
# (restapi.authentication) when the role set them; GET endpoints stay open.
_SWITCHOVER = (
    "import base64,json,ssl,sys,urllib.request,yaml\n"
    "auth=(yaml.safe_load(open(sys.argv[4])).get('restapi') or {}).get('authentication')\n"
    "h={'Content-Type':'application/json'}\n"
    "if auth:\n"
    "    pair=(auth['username']+':'+auth['password']).encode()\n"
    "    h['Authorization']='Basic '+base64.b64encode(pair).decode()\n"
    "body=json.dumps({'leader':sys.argv[2],'candidate':sys.argv[3]}).encode()\n"
    "req=urllib.request.Request(sys.argv[1],data=body,method='POST',headers=h)\n"
    # Patroni 3.0.2 may reset the connection once the leader demotes (measured in the two-site lab):
    # the switchover happened or not, the drill's cluster checks say which.
    "try:\n"
    "    ctx=ssl.create_default_context(cafile=sys.argv[5])\n"
    "    print(json.dumps({'status':urllib.request.urlopen(req,timeout=60,context=ctx).status}))\n"
    "except (ConnectionResetError,__import__('http.client').client.RemoteDisconnected) as e:\n"
    "    print(json.dumps({'status':None,'error':type(e).__name__}))\n"
)


def failback(topo: topology.Topology, opts: DrillOptions) -> dict[str, Any]:
    """Move the database leader back to the primary site with a Patroni switchover, under load; DNS
    follows on its own once the primary site's /readyz answers 200 again."""
    needs = (topology.PRIMARY_SITE, topology.SECONDARY_SITE)
    _require_lab(topo, needs)
    leader, candidate = _failback_plan(topo)
    if leader is None:
        raise preflight.PreflightError(
            [
                f"the leader is already on the {topology.PRIMARY_SITE} site: nothing to fail back "
                "(run `puente drill site-failover` first)"
            ]
        )
    fault = Fault(
        "failback", lambda: _switchover(topo, leader, candidate), lambda: None, needs, expect_failover=True
    )
    return run_drill(topo, opts, fault)


def _failback_plan(topo: topology.Topology) -> tuple[str | None, str]:
    """(current leader, primary-site member to hand over to), or (None, "") when the leader already is
    on the primary site. Waits (bounded) for the cluster to settle first: right after a drill the old
    leader may still be rejoining, and with synchronous_mode only the synchronous standby may take over.
    Refuses (PreflightError) when Patroni does not answer or no member can take the leader."""
    config = cluster.patroni_config(topo.db_members)
    if config is None:
        raise preflight.PreflightError(["Patroni REST does not answer on any database member"])
    synchronous = bool(config.get("synchronous_mode"))
    view = cluster.wait_settled(topo.db_members, _SETTLE_SECONDS, need_sync=synchronous)
    site_of = {m.name: m.site for m in topo.db_members}
    try:
        return cluster.handover_plan(view, site_of, topology.PRIMARY_SITE, synchronous)
    except ValueError as exc:
        why = [
            f"{name} is not back; the end of its journal:\n      " + "\n      ".join(lines[-15:])
            for name, lines in cluster.diagnose(view, topo.db_members).items()
        ]
        raise preflight.PreflightError([str(exc), *why]) from exc


def _switchover(topo: topology.Topology, leader: str, candidate: str) -> None:
    by_name = {m.name: m for m in topo.db_members}
    url = f"https://{by_name[leader].ip}:{topology.PATRONI_PORT}/switchover"
    say(f"switchover {leader} -> {candidate} (POST {url})")
    cluster._exec(
        leader,
        ["python3", "-c", _SWITCHOVER, url, leader, candidate, PATRONI_CONFIG, topology.PATRONI_CA],
        timeout=90,
    )


# How long the set-up switchover may take to settle (measured: ~3 s for the switch, 5-30 s for the old
# leader to stream again as a synchronous standby).
_SETTLE_SECONDS = 90.0


def _leader_to_primary_site(topo: topology.Topology) -> None:
    """A site-failover drill measures the designed state: the leader on the primary site. After an
    earlier drill (or a bootstrap that elected a cloud member) it may be elsewhere: hand it back first,
    without load, and wait until the cluster settled, so the drill's 'old primary fenced' check judges
    the member that really was cut off."""
    leader, candidate = _failback_plan(topo)
    if leader is None:
        return
    say(f"the leader {leader} is not on the {topology.PRIMARY_SITE} site: handing it to {candidate} first")
    _switchover(topo, leader, candidate)
    view = cluster.wait_settled(topo.db_members, _SETTLE_SECONDS)
    site_of = {m.name: m.site for m in topo.db_members}
    now = [m["name"] for m in view if m.get("role") in report.LEADER_ROLES]
    if len(now) != 1 or site_of.get(now[0]) != topology.PRIMARY_SITE:
        raise preflight.PreflightError(
            [f"the switchover to {candidate} did not settle in {_SETTLE_SECONDS:g} s: leader now {now}"]
        )
