#!/usr/bin/env python3
"""Operator speed: how long `site.yml` takes on an unchanged, converged lab (a script that prints figures,
not a test; issue 10).

It runs the operator's own command, unmodified and with nothing skipped,

    ansible-playbook -i inventories/lab --vault-password-file inventories/lab/vault-password.lab-only \
        playbooks/site.yml

--runs times in a row (after one --warmup run that is not counted, which converges whatever was not),
and prints per run: the wall time, the hosts' total `changed`/`failed`/`unreachable`, the number of task
results, and where the CPU went: the controller's (ansible-playbook and its workers and ssh clients) and the
lab nodes' (their cgroups, less what they use idle), and so the floor no scheduling can beat on this
machine: (controller + nodes) / cores; then the slowest tasks of the last run (ansible.posix.profile_tasks,
enabled in ansible.cfg) and a last line saying whether every counted run ended changed=0 within --target
seconds (60 by default).

    .venv/bin/python bench/site_noop.py [--runs 3] [--warmup 1] [--target 60] [--top 15]
        [-i INVENTORY] [--vault-password-file FILE] [--out FILE] [-- EXTRA ansible-playbook ARGS]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from proc_cpu import tree_cpu

ROOT = Path(__file__).resolve().parents[1]
RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)"
)
TIMING = re.compile(r"^(?P<task>.+?) -+ (?P<seconds>\d+\.\d+)s$")


@dataclass
class Run:
    seconds: float
    returncode: int
    hosts: int = 0
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    changed_hosts: list[str] = field(default_factory=list)
    slowest: list[tuple[str, float]] = field(default_factory=list)
    controller_cpu: float = 0.0
    nodes_cpu: float | None = None
    """The lab nodes' CPU seconds during the run, less their idle use over the same time."""
    plays: list[tuple[str, float, float, float]] = field(default_factory=list)
    """Per play: its name, wall seconds, the controller's and the nodes' CPU seconds (nodes less idle)."""


def parse(output: str, seconds: float, returncode: int) -> Run:
    run = Run(seconds=seconds, returncode=returncode)
    in_recap = in_timing = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if line.startswith("TASKS RECAP"):
            in_recap, in_timing = False, True
            continue
        if in_recap and (m := RECAP.match(line)):
            run.hosts += 1
            for key in ("ok", "changed", "failed", "unreachable", "skipped"):
                setattr(run, key, getattr(run, key) + int(m[key]))
            if int(m["changed"]):
                run.changed_hosts.append(m["host"])
        elif in_timing and (m := TIMING.match(line.strip())):
            run.slowest.append((m["task"].strip(), float(m["seconds"])))
    return run


def node_cgroups() -> list[Path]:
    """cpuacct.usage of each running lab node (podman, cgroup v1 or v2); empty if not readable."""
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "lab" / "containers.conf")}
    proc = subprocess.run(["podman", "ps", "-q", "--no-trunc"], text=True, capture_output=True, env=env)
    files = []
    for cid in proc.stdout.split():
        for pattern in (f"cpuacct/**/libpod-{cid}*/cpuacct.usage", f"**/libpod-{cid}*/cpu.stat"):
            found = sorted(Path("/sys/fs/cgroup").glob(pattern))
            if found:
                files.append(found[0])
                break
    return files


def cpu_seconds(files: list[Path]) -> float:
    total = 0.0
    for f in files:
        text = f.read_text()
        if f.name == "cpu.stat":  # cgroup v2: usage_usec
            total += int(text.split("usage_usec", 1)[1].split()[0]) / 1e6
        else:
            total += int(text) / 1e9
    return total


def idle_rate(files: list[Path], seconds: float = 10.0) -> float:
    """The nodes' CPU seconds per second while nothing is run on them."""
    before = cpu_seconds(files)
    time.sleep(seconds)
    return (cpu_seconds(files) - before) / seconds


def run_once(command: list[str], log: Path, nodes: list[Path], idle: float) -> Run:
    print("+ " + shlex.join(command), flush=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    nodes_before = cpu_seconds(nodes)
    start = time.monotonic()
    lines: list[str] = []
    # play, seconds, controller CPU, nodes' CPU; before the first play: parsing the inventory and playbooks
    marks: list[tuple[str, float, float, float]] = [("(start: inventory, playbooks)", 0, 0, nodes_before)]
    with subprocess.Popen(
        command, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ}
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(("PLAY [", "PLAY RECAP")):
                name = line.split("[", 1)[1].rsplit("]", 1)[0] if line.startswith("PLAY [") else ""
                marks.append((name, time.monotonic() - start, tree_cpu(proc.pid), cpu_seconds(nodes)))
        returncode = proc.wait()
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = "".join(lines)
    log.write_text(output)
    run = parse(output, seconds, returncode)
    run.controller_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if nodes:
        run.nodes_cpu = cpu_seconds(nodes) - nodes_before - idle * seconds
    for (name, t0, c0, n0), (_, t1, c1, n1) in itertools.pairwise(marks):
        run.plays.append((name, round(t1 - t0, 2), round(c1 - c0, 2), round(n1 - n0 - idle * (t1 - t0), 2)))
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="runs before the counted ones (not counted)")
    ap.add_argument("--target", type=float, default=60.0, help="seconds a no-op run may take")
    ap.add_argument("--top", type=int, default=15, help="slowest tasks of the last run to print")
    ap.add_argument("-i", "--inventory", default="inventories/lab")
    ap.add_argument("--vault-password-file", default="inventories/lab/vault-password.lab-only")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench" / "site_noop.json")
    ap.add_argument("extra", nargs="*", help="after --: extra ansible-playbook arguments")
    args = ap.parse_args(argv)

    command = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        "-i",
        args.inventory,
        "--vault-password-file",
        args.vault_password_file,
        "playbooks/site.yml",
        *args.extra,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    nodes = node_cgroups()
    idle = idle_rate(nodes) if nodes else 0.0
    cores = os.cpu_count() or 1
    print(f"{len(nodes)} lab nodes' cgroups; idle they use {idle:.2f} CPU s/s; {cores} cores", flush=True)
    for n in range(args.warmup + args.runs):
        label = "warmup" if n < args.warmup else f"run {n - args.warmup + 1}"
        run = run_once(command, args.out.with_name(f"site_noop.{n}.log"), nodes, idle)
        print(
            f"{label:>8}: {run.seconds:7.1f} s  rc={run.returncode}  hosts={run.hosts}  "
            f"task results={run.ok + run.skipped + run.failed}  changed={run.changed}  "
            f"failed={run.failed}  unreachable={run.unreachable}"
            + (f"  changed on {', '.join(run.changed_hosts)}" if run.changed_hosts else ""),
            flush=True,
        )
        if run.nodes_cpu is not None:
            print(
                f"{'':>8}  CPU: controller {run.controller_cpu:.1f} s + nodes {run.nodes_cpu:.1f} s "
                f"-> {(run.controller_cpu + run.nodes_cpu) / cores:.1f} s on {cores} cores at best",
                flush=True,
            )
        if n >= args.warmup:
            runs.append(run)
    if not runs:
        return 0
    print("\nper play of the last run: wall, CPU controller + nodes")
    for name, wall, controller, node_cpu in runs[-1].plays:
        print(f"  {wall:6.1f} s  {controller:5.1f} + {node_cpu:5.1f} CPU s  {name}")
    print(
        f"\nslowest tasks of the last run (summed over hosts as profile_tasks reports them, top {args.top}):"
    )
    for task, seconds in runs[-1].slowest[: args.top]:
        print(f"  {seconds:6.2f} s  {task}")
    times = sorted(r.seconds for r in runs)
    ok = all(r.returncode == 0 and r.changed == 0 and r.seconds <= args.target for r in runs)
    args.out.write_text(json.dumps({"command": command, "runs": [asdict(r) for r in runs]}, indent=2))
    print(
        f"\nno-op site.yml over {len(runs)} run(s): min {times[0]:.1f} s, "
        f"median {times[len(times) // 2]:.1f} s, "
        f"max {times[-1]:.1f} s; every run changed=0 in <= {args.target:.0f} s: {'yes' if ok else 'NO'}"
        f"  (summary: {args.out})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
