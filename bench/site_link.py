#!/usr/bin/env python3
"""What the link between the lab's sites costs: through the VPN tunnels against the direct path, in one run
(issue 14; a script that prints figures, not a test).

Each half measures, between an on-prem and a cloud API node (not the gateways: the path the sites' traffic
takes, the host's policy routes and both gateways included):

1. the round trip: ``ping`` COUNT times at 20 ms (min/avg/max);
2. the throughput: ``iperf3``, one TCP stream for SECONDS, on-prem -> cloud and back (-R);
3. the API's create latency with synchronous replication across the link: REQUESTS creates at RATE per
   second, one after another on one keep-alive connection, through the edge of the database leader's site
   (its synchronous standby is on the other site: hosts.yml's nosync), p50/p99/max.

The first half runs on the lab as it is (the tunnels); for the second, the direct path, the bench deletes
the host's policy routes to the gateways (``routing.forget_gateways``: the host routes the sites to each
other itself, as before issue 14) and puts them back in a ``finally`` (``routing.through_gateways``).
``--rounds 2`` alternates tunnel, direct, tunnel, direct (other work on the machine drifts). Before each
half, and after the routes are back, the bench waits until the lab writes again (Patroni lists a synchronous
standby and a create is answered within 5 s) and prints how long that took (back on the tunnels: 0.5 s;
60 s before the gateways' forward chains stopped dropping the returning flows as `ct state invalid`).

iperf3 is installed on the two nodes for the run (apt, from Debian) with an input rule for its port from
the other node only, and both removed at the end (``--keep-iperf3`` leaves the package). Every command is
printed. It holds the lab's lock (as `puente lab` and `puente drill` do) for the whole run:

    .venv/bin/python bench/site_link.py [--count 200] [--seconds 5]
        [--requests 600] [--rate 40] [--rounds 1] [--keep-iperf3] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import ssl
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "roles"))  # what the lab tests send through the gateways

from lab_requests import CA, SHIPMENT  # noqa: E402

from puente.keys.remote import create as create_key  # noqa: E402
from puente.lab import inventory, lock, podman, routing  # noqa: E402
from puente.shell import run  # noqa: E402

INVENTORY = ROOT / "inventories" / "lab"
IPERF_PORT = 5201
MARK = "puente-bench-site-link"
PIDFILE = "/run/puente-bench-iperf3.pid"


def on(node: str, script: str, *, check: bool = True, quiet: bool = False) -> str:
    """A root shell command on a lab node (printed)."""
    done = run(["podman", "exec", node, "sh", "-c", script], env=podman.env(), capture=True, check=check,
               quiet=quiet)  # fmt: skip
    return done.stdout or ""


def pair(lab: inventory.Lab) -> tuple[inventory.Node, inventory.Node]:
    """An on-prem and a cloud API node (the gateways are the path, not its ends)."""
    api = [n for n in lab.in_group("api_nodes") if n.wan_ip is None]
    return next(n for n in api if n.site.name == "onprem"), next(n for n in api if n.site.name == "cloud")


def patroni(lab: inventory.Lab) -> list[dict[str, Any]]:
    """``patronictl list`` (members, roles, timeline)."""
    db = lab.in_group("postgresql")[0].name
    return list(json.loads(on(db, "patronictl -c /etc/patroni/config.yml list -f json")))


def timeline(lab: inventory.Lab) -> int:
    return max(int(m.get("TL") or 0) for m in patroni(lab))


def leader_and_edge(lab: inventory.Lab) -> tuple[dict[str, str], inventory.Node]:
    """Patroni's members ({name: role}) and the edge of the leader's site (where the API writes locally)."""
    roles = {m["Member"]: m["Role"] for m in patroni(lab)}
    leader = next(name for name, role in roles.items() if role == "Leader")
    site = lab.nodes[leader].site.name
    return roles, next(n for n in lab.in_group("gateways") if n.site.name == site)


# --- iperf3 on the two nodes, for the run only ------------------------------------------------------------


@contextlib.contextmanager
def iperf3(server: inventory.Node, client: inventory.Node, keep: bool) -> Iterator[None]:
    installed = []
    try:
        for node in (server, client):
            if "ii  iperf3" not in on(node.name, "dpkg -l iperf3 2>/dev/null || true", quiet=True):
                on(node.name, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                              "iperf3 >/dev/null")  # fmt: skip
                installed.append(node)
        rule = f'ip saddr {client.ip} tcp dport {IPERF_PORT} accept comment "{MARK}"'
        on(server.name, f"nft insert rule inet puente_filter input {rule}")
        on(server.name, f"iperf3 -s -D -p {IPERF_PORT} -I {PIDFILE}")
        yield
    finally:
        on(server.name, f"test -f {PIDFILE} && kill $(cat {PIDFILE}); rm -f {PIDFILE}", check=False)
        rules = on(server.name, "nft -a list chain inet puente_filter input", check=False, quiet=True)
        for line in rules.splitlines():
            if MARK in line:
                on(server.name, f"nft delete rule inet puente_filter input handle {line.split()[-1]}")
        for node in [] if keep else installed:
            on(node.name, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q iperf3 libiperf0 >/dev/null",
               check=False)  # fmt: skip


# --- the measures -----------------------------------------------------------------------------------------


def ping(source: inventory.Node, target: inventory.Node, count: int) -> dict[str, float]:
    out = on(source.name, f"ping -q -c {count} -i 0.02 -W 2 {target.ip}")
    lost = re.search(r"(\d+)% packet loss", out)
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    assert rtt and lost, out
    return {
        "min_ms": float(rtt[1]),
        "avg_ms": float(rtt[2]),
        "max_ms": float(rtt[3]),
        "loss_pct": float(lost[1]),
    }


def throughput(client: inventory.Node, server: inventory.Node, seconds: int, reverse: bool) -> float:
    """Mbit/s received, one TCP stream (``reverse``: the server sends)."""
    out = on(
        client.name, f"iperf3 -J -c {server.ip} -p {IPERF_PORT} -t {seconds}" + (" -R" if reverse else "")
    )
    return round(json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6, 1)


def creates(edge: inventory.Node, token: str, requests: int, rate: float) -> dict[str, float]:
    """REQUESTS creates at RATE per second (one at a time: a slow one delays the next), their latency."""
    latencies, failed = [], 0
    interval = 1 / rate
    with httpx.Client(base_url=f"https://{edge.ip}", verify=ssl.create_default_context(cafile=CA), timeout=15,
                      headers={"Authorization": f"Bearer {token}"}) as client:  # fmt: skip
        for _ in range(5):  # connection, TLS, the API's pools: not measured
            client.post("/v1/shipments", json=SHIPMENT, headers={"Idempotency-Key": f'"warm-{uuid.uuid4()}"'})
        start = time.monotonic()
        for i in range(requests):
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
            began = time.perf_counter()
            try:
                r = client.post(
                    "/v1/shipments", json=SHIPMENT, headers={"Idempotency-Key": f'"bench-{uuid.uuid4()}"'}
                )
            except httpx.TransportError:  # e.g. no answer within the timeout: a failure, not a latency
                failed += 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)
            failed += r.status_code != 201
    ordered = sorted(latencies) or [float("nan")]
    return {
        "requests": requests,
        "failed": failed,
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


def settle(lab: inventory.Lab, token: str, timeout: float = 300) -> float:
    """Seconds until the lab writes again after a change of path: a synchronous standby listed by Patroni
    and a create answered 201 within 5 s (flows that bypassed the gateways are `ct state invalid` there when
    they come back, until they time out: the bench reports how long that took rather than measuring it)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        roles, edge = leader_and_edge(lab)
        if "Sync Standby" in roles.values():
            try:
                with httpx.Client(verify=ssl.create_default_context(cafile=CA), timeout=5) as client:
                    r = client.post(f"https://{edge.ip}/v1/shipments", json=SHIPMENT,
                                    headers={"Authorization": f"Bearer {token}",
                                             "Idempotency-Key": f'"settle-{uuid.uuid4()}"'})  # fmt: skip
                if r.status_code == 201:
                    return round(time.monotonic() - began, 1)
            except httpx.TransportError:
                pass
        time.sleep(2)
    raise SystemExit(f"bench: the lab did not write again within {timeout:.0f} s after the change of path")


def measure(path: str, lab: inventory.Lab, args: argparse.Namespace, token: str) -> dict[str, Any]:
    onprem, cloud = pair(lab)
    roles, edge = leader_and_edge(lab)
    print(
        f"bench: {path}: {onprem.name} <-> {cloud.name}; API through {edge.name}; Patroni {roles}", flush=True
    )
    before = timeline(lab)
    figures = {
        "path": path,
        "load_average": os.getloadavg()[0],
        "patroni": roles,
        "edge": edge.name,
        "ping": ping(onprem, cloud, args.count),
        "iperf3_onprem_to_cloud_mbit": throughput(onprem, cloud, args.seconds, reverse=False),
        "iperf3_cloud_to_onprem_mbit": throughput(onprem, cloud, args.seconds, reverse=True),
        "create": creates(edge, token, args.requests, args.rate),
    }
    # a failover meanwhile (something else working on the lab, e.g. a drill) makes the half incomparable
    figures["timeline"] = [before, timeline(lab)]
    if before != figures["timeline"][1]:
        after = figures["timeline"][1]
        print(f"bench: WARNING: Patroni's timeline went {before} -> {after} during the {path} half: "
              "a failover happened meanwhile, its figures are not comparable", flush=True)  # fmt: skip
    return figures


@contextlib.contextmanager
def direct_path(lab: inventory.Lab) -> Iterator[None]:
    """The host routes the sites to each other itself (no gateway, no tunnel) until the block ends."""
    print(f"bench: forget_gateways(): ip rule del pref {routing.EXEMPT_PREF} and {routing.SITE_PREF}, "
          f"ip route flush table {routing.TABLE_BASE + 1}-{routing.TABLE_BASE + 8}, "
          f"nft delete table inet {routing.NFT_TABLE}", flush=True)  # fmt: skip
    routing.forget_gateways()
    try:
        yield
    finally:
        routing.through_gateways(lab)


def show(results: list[dict[str, Any]]) -> None:
    print(f"\n{'path':<8} {'load':>5} {'ping min/avg/max ms':>22} {'iperf3 up/down Mbit/s':>22} "
          f"{'create p50/p99/max ms':>24} {'failed':>7} {'settled s':>9} {'TL':>7}")  # fmt: skip
    for r in results:
        p, c = r["ping"], r["create"]
        print(f"{r['path']:<8} {r['load_average']:>5.1f} "
              f"{p['min_ms']:>6.3f}/{p['avg_ms']:.3f}/{p['max_ms']:.3f}".ljust(37)
              + f"{r['iperf3_onprem_to_cloud_mbit']:>9}/{r['iperf3_cloud_to_onprem_mbit']:<10}"
              + f"{c['p50_ms']:>9}/{c['p99_ms']}/{c['max_ms']}".ljust(27)
              + f"{c['failed']}/{c['requests']}".ljust(10) + f"{r['settled_s']:>7}"
              + "   {}->{}".format(*r["timeline"]))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="pings per half (at 20 ms)")
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 seconds per direction")
    parser.add_argument("--requests", type=int, default=600, help="API creates per half")
    parser.add_argument("--rate", type=float, default=40, help="API creates per second (one at a time)")
    parser.add_argument("--rounds", type=int, default=1, help="tunnel then direct, this many times")
    parser.add_argument("--keep-iperf3", action="store_true", help="leave iperf3 installed on the two nodes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    lab = inventory.load()
    if not all(lab.gateway_of(s) for s in ("onprem", "cloud")):
        parser.error("the lab's sites have no VPN gateways (lab_wan_address): nothing to compare")
    with lock.exclusive():  # it changes the lab's routing: no drill or converge meanwhile
        return _run(args, lab)


def _run(args: argparse.Namespace, lab: inventory.Lab) -> int:
    token = create_key(f"bench-site-link-{uuid.uuid4().hex[:8]}", [INVENTORY], label="bench/site_link.py")
    onprem, cloud = pair(lab)
    results = []
    with iperf3(cloud, onprem, args.keep_iperf3):
        for _ in range(args.rounds):
            waited = settle(lab, token)
            results.append({**measure("tunnel", lab, args, token), "settled_s": waited})
            with direct_path(lab):
                waited = settle(lab, token)
                results.append({**measure("direct", lab, args, token), "settled_s": waited})
    print(f"bench: back through the tunnels, the lab wrote again after {settle(lab, token)} s", flush=True)
    show(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
