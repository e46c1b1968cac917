"""`puente lab up|down|status|scale`: the lab's nodes on this machine, converged by the site playbook."""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import time

from puente.lab import ansible, image, inventory, lock, nodes, paths, podman, routing, ssh, stamp, wheelhouse
from puente.lab.status import collect, monitoring_urls, render
from puente.shell import CommandError, run


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lab = subparsers.add_parser("lab", help="the lab: on-prem (and later cloud) nodes as podman containers")
    sub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")

    up = sub.add_parser("up", help="build what is missing, start the nodes, converge with playbooks/site.yml")
    up.add_argument(
        "--no-converge", action="store_true", help="start nodes and wait for SSH; do not run Ansible"
    )
    up.add_argument(
        "--converge",
        action="store_true",
        help="run playbooks/site.yml even when nothing changed since the last converge",
    )
    up.add_argument(
        "--site",
        action="append",
        metavar="SITE",
        help="only this site's nodes (repeatable; default: every site of the inventory)",
    )
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="remove the lab's containers, networks and SSH key")
    down.add_argument("--purge", action="store_true", help="also remove the node image and the caches")
    down.add_argument(
        "--all",
        action="store_true",
        help="every container/network with the lab's label, whatever the inventory",
    )
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="nodes, IPs, systemd state, services, URLs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    scale = sub.add_parser("scale", help="set the number of API nodes of a site, e.g. `scale api=3`")
    scale.add_argument("spec", metavar="api=N", help="wanted number of API nodes")
    scale.add_argument("--site", default="onprem", help="site to scale (default: onprem)")
    scale.add_argument("--no-converge", action="store_true", help="only start/remove nodes")
    scale.set_defaults(func=cmd_scale)


def _step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def _load_checked(sites: list[str] | None = None) -> inventory.Lab:
    """Everything that can be wrong with the inventory fails here, before any node is touched."""
    _step(f"checking the inventory {ansible.rel(paths.INVENTORY)}")
    try:
        lab = inventory.load()
    except inventory.InventoryError as exc:
        raise CommandError(["puente", "lab"], 2, str(exc)) from exc
    unknown = sorted(set(sites or []) - set(lab.sites))
    if unknown:
        raise CommandError(
            ["puente", "lab"], 2, f"unknown site(s) {unknown}; the inventory has {sorted(lab.sites)}"
        )
    ansible.check_inventory()
    podman.check_ulimits()
    return lab


def _prepare(
    lab: inventory.Lab, selected: list[inventory.Node], timings: dict[str, float], remove_orphans: bool = True
) -> str:
    """Image, key, networks, nodes, SSH; returns the image tag."""
    _step("node image")
    t = time.monotonic()
    tag, built = image.ensure()
    timings["image_build_s" if built else "image_check_s"] = round(time.monotonic() - t, 1)

    _step("SSH key, networks and nodes")
    t = time.monotonic()
    ssh.ensure_key()
    paths.APT_ARCHIVES.mkdir(parents=True, exist_ok=True)
    for site in sorted({n.site for n in selected}, key=lambda s: s.name):
        nodes.ensure_network(site)
    if lab.wan and any(n.wan_ip for n in selected):
        nodes.ensure_network(lab.wan, internal=True)
    routing.keep_source_addresses(lab.sites.values())
    nodes.ensure_nodes(lab, selected, tag, remove_orphans)
    # After the nodes: a network's bridge exists only once a container has joined it.
    routing.through_gateways(lab)
    timings["nodes_waited_ssh_s"] = round(nodes.wait_for_ssh(selected), 1)
    timings["nodes_up_s"] = round(time.monotonic() - t, 1)
    return tag


def _node_ids(selected: list[inventory.Node]) -> dict[str, str]:
    wanted = {n.name for n in selected}
    return {c["Names"][0]: c["Id"] for c in podman.ps() if c["Names"][0] in wanted}


def _verify(lab: inventory.Lab) -> bool:
    """The cheap proof an unchanged lab still serves: each gateway's /readyz answers 200."""
    ok = True
    for url in gateway_urls(lab):
        status, body = stamp.readyz(url + "readyz")
        print(f"+ GET {url}readyz -> {status} {body[:80]}", flush=True)
        ok = ok and status == 200
    return ok


def cmd_up(args: argparse.Namespace) -> int:
    with lock.exclusive():
        return _cmd_up(args)


def _cmd_up(args: argparse.Namespace) -> int:
    start = time.monotonic()
    lab = _load_checked(args.site)
    selected = lab.for_sites(args.site)
    timings: dict[str, float] = {}
    tag = _prepare(lab, selected, timings)
    if not args.no_converge:
        _wheelhouse(timings, lab)
        ids = _node_ids(selected)
        last = None if args.converge or args.site else stamp.unchanged(tag, ids)
        if last:
            _step(f"converge: nothing changed since the last one ({last}); verifying (--converge forces it)")
            if not _verify(lab):
                print("verification failed: converging", flush=True)
                last = None
        if not last:
            stamp.forget()
            _converge(timings, limit=None if not args.site else [n.name for n in selected])
            if not args.site:
                stamp.record(tag, ids)
    timings["total_s"] = round(time.monotonic() - start, 1)
    _save_timings("up", timings)
    _print_urls(lab)
    print(f"\nlab up: {len(selected)} nodes in {timings['total_s']:.0f} s  {json.dumps(timings)}", flush=True)
    return 0


def _wheelhouse(timings: dict[str, float], lab: inventory.Lab) -> None:
    _step("wheelhouses (nodes install the API and moto from them, offline)")
    t = time.monotonic()
    wheelhouse.ensure()
    if lab.groups.get("sqs"):
        wheelhouse.ensure_moto()
    timings["wheelhouse_s"] = round(time.monotonic() - t, 1)


def _converge(timings: dict[str, float], limit: list[str] | None, extra: list[str] | None = None) -> None:
    _step("converge: playbooks/site.yml")
    t = time.monotonic()
    ansible.playbook("site.yml", extra or [], limit=limit)
    timings["converge_s"] = round(time.monotonic() - t, 1)


def _save_timings(action: str, timings: dict[str, float]) -> None:
    paths.CACHE.mkdir(parents=True, exist_ok=True)
    path = paths.CACHE / "timings.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history = [
        *history[-49:],
        {"action": action, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **timings},
    ]
    path.write_text(json.dumps(history, indent=1) + "\n")


def gateway_urls(lab: inventory.Lab) -> list[str]:
    return [f"https://{n.ip}/" for n in lab.in_group("gateways")]


EXAMPLE_SHIPMENT = (
    '{"sender":{"name":"Ana","street":"Calle 1","city":"Madrid","postal_code":"28001","country":"ES"},'
    '"recipient":{"name":"Bo","street":"Main St 2","city":"Lyon","postal_code":"69001","country":"FR"},'
    '"parcels":[{"weight_grams":1200,"length_cm":30,"width_cm":20,"height_cm":10}]}'
)


def _print_urls(lab: inventory.Lab) -> None:
    cacert = ansible.rel(paths.CA_DIR / "ca.crt")
    print("\nAn API key (every /v1 request needs one; the token is the last line):", flush=True)
    inventory_dir = ansible.rel(paths.INVENTORY)
    print(f"  KEY=$(.venv/bin/puente keys create demo -i {inventory_dir} | tail -1)", flush=True)
    for url in gateway_urls(lab):
        print(f"\nThe API through the gateway: {url}", flush=True)
        print(
            f'  curl --cacert {cacert} -H "Authorization: Bearer $KEY" \\\n'
            f"       -H 'Content-Type: application/json' \\\n"
            f'       -H "Idempotency-Key: \\"$(cat /proc/sys/kernel/random/uuid)\\"" \\\n'
            f"       -d '{EXAMPLE_SHIPMENT}' {url}v1/shipments",
            flush=True,
        )
        print(f'  curl --cacert {cacert} -H "Authorization: Bearer $KEY" {url}v1/shipments/ID', flush=True)
    _print_failover_dns(lab, cacert)


def _print_failover_dns(lab: inventory.Lab, cacert: str) -> None:
    """The name clients use: PowerDNS answers the on-prem gateway while its /readyz is up, else the cloud."""
    servers = lab.in_group("dns")
    if not servers or len(lab.sites) < 2:
        return
    name = f"api.{inventory.shared_vars().get('puente_dns_zone', 'puente.lab')}"
    server = servers[0].ip
    print(f"\nThe failover DNS name: {name} (PowerDNS at {server}: PRIMARY on-prem, SECONDARY cloud)")
    print(f"  dig +short @{server} {name}", flush=True)
    print(
        f"  curl --cacert {cacert} --resolve {name}:443:$(dig +short @{server} {name} | head -1) "
        f"https://{name}/readyz",
        flush=True,
    )


def cmd_down(args: argparse.Namespace) -> int:
    with lock.exclusive():
        return _cmd_down(args)


def _cmd_down(args: argparse.Namespace) -> int:
    if args.all:
        sites: set[str] | None = None
        names: set[str] = set()
        wanted_networks: set[str] | None = None
        routing.forget_gateways()
    else:
        lab = _load_checked()
        sites, names = set(lab.sites), set(lab.nodes)
        wanted_networks = {s.network for s in lab.sites.values()} | ({lab.wan.network} if lab.wan else set())
        routing.forget_sites(lab.sites.values())
        routing.forget_gateways(lab)
    _step("removing the lab's containers and networks")
    containers = [
        c["Names"][0]
        for c in podman.ps()
        if sites is None
        or c["Names"][0] in names
        or (c.get("Labels") or {}).get(f"{paths.LABEL}.site") in sites
    ]
    nodes.remove_nodes(containers)
    out = podman.podman(
        "network", "ls", "--filter", f"label={paths.LABEL}", "--format", "{{.Name}}", capture=True, quiet=True
    )
    networks = [
        n
        for n in out.split()
        if n.startswith("puente-") and (wanted_networks is None or n in wanted_networks)
    ]
    subnets = [
        ipaddress.IPv4Network(sub["subnet"])
        for net in podman.inspect("network", networks)
        for sub in net.get("subnets") or []
    ]
    if networks:
        podman.podman("network", "rm", "--force", *networks)
    for subnet in subnets:
        nodes.remove_stale_bridges(subnet)
    ssh.remove_key()
    stamp.forget()
    if args.purge:
        _step("--purge: node image and caches")
        image.remove_all()
        for folder in (paths.CACHE, paths.WHEELHOUSE):
            if folder.exists():
                run(["rm", "-rf", "--one-file-system", str(folder)])
    print(f"lab down: removed {len(containers)} nodes and {len(networks)} networks", flush=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    lab = inventory.load()
    report = collect(lab)
    report["urls"] = gateway_urls(lab)
    report["monitoring"] = monitoring_urls(lab)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(render(report))
    return 0 if all(n["state"] == "running" for n in report["nodes"]) else 3


_SCALE = re.compile(r"^api=(\d+)$")


def cmd_scale(args: argparse.Namespace) -> int:
    with lock.exclusive():
        return _cmd_scale(args)


def _cmd_scale(args: argparse.Namespace) -> int:
    from puente.lab import scale

    match = _SCALE.match(args.spec)
    if not match:
        raise CommandError(
            ["puente", "lab", "scale", args.spec], 2, "expected api=N, e.g. `puente lab scale api=3`"
        )
    start = time.monotonic()
    lab = _load_checked([args.site])
    plan = scale.plan(lab, args.site, int(match.group(1)))
    timings: dict[str, float] = {}
    if not plan.added and not plan.removed:
        print(f"{args.site} already has {plan.count} API nodes", flush=True)
    before = scale.write(plan)
    try:
        new_lab = _load_checked([args.site])
    except CommandError:
        scale.restore(before)
        raise
    site_nodes = new_lab.for_sites([args.site])
    # Removed nodes keep running until HAProxy and the peers have forgotten them (below).
    _prepare(new_lab, site_nodes, timings, remove_orphans=False)
    if not args.no_converge:
        # The generated nodes get everything; the site's other tiers learn about them (HAProxy
        # backends, pg_hba, firewall peers), and so does every site's Prometheus (each scrapes both
        # sites). The API nodes of hosts.yml need nothing.
        # The VPN gateways need nothing either: they forward the whole site's prefix.
        unchanged = {n.name for g in ("api_nodes", "vpn", "aws_vpn") for n in new_lab.in_group(g)}
        # Every generated node is included, not only the ones added now: a scale that failed halfway
        # left a node that still needs its roles.
        limit = [n.name for n in site_nodes if n.name not in unchanged or n.name in plan.extra]
        stamp.forget()
        _wheelhouse(timings, lab)
        _converge(timings, limit=limit)
        others = [n.name for n in new_lab.in_group("monitoring") if n.name not in limit]
        if others:
            _step("converge: playbooks/monitoring.yml (the other sites' Prometheus)")
            ansible.playbook("monitoring.yml", [], limit=others)
    if plan.removed:
        nodes.remove_nodes(plan.removed)
    timings["total_s"] = round(time.monotonic() - start, 1)
    _save_timings(f"scale api={plan.count}", timings)
    print(
        f"\nlab scale: {args.site} has {plan.count} API nodes (+{len(plan.added)} -{len(plan.removed)}) "
        f"in {timings['total_s']:.0f} s",
        flush=True,
    )
    return 0
