"""Configuration drift: what ``ansible-playbook --check --diff`` would change on the nodes.

The roles are check-mode honest and idempotent (a second run reports changed=0), so any change the
check run reports is a difference between the node and the code: drift.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from puente.shell import ROOT, run

_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")
_TASK = re.compile(r"^(TASK|RUNNING HANDLER) \[(?P<name>.*)\] \*+$")
_CHANGED = re.compile(r"^changed: \[(?P<host>[^\]]+)\]")


def command(inventory: str, playbook: str = "playbooks/site.yml", limit: str | None = None) -> list[str]:
    # the project's venv ships Ansible; use it even when the venv is not activated
    venv_tool = Path(sys.executable).parent / "ansible-playbook"
    tool = str(venv_tool) if venv_tool.exists() else "ansible-playbook"
    return [tool, "-i", inventory, playbook, "--check", "--diff", *(["--limit", limit] if limit else [])]


def parse(output: str) -> dict[str, Any]:
    """Per-host recap counts and the changed tasks ("host: task") of a check run's output."""
    hosts: dict[str, dict[str, int]] = {}
    changes: list[str] = []
    in_recap, task = False, ""
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            m = _RECAP_LINE.match(line.strip())
            if m:
                counts = dict(kv.split("=") for kv in m.group("counts").split())
                hosts[m.group("host")] = {k: int(v) for k, v in counts.items()}
            continue
        if t := _TASK.match(line):
            task = t.group("name")
        elif c := _CHANGED.match(line):
            changes.append(f"{c.group('host')}: {task}")
    # a looped task prints one "changed:" per item; the task is what changed
    return {"hosts": hosts, "changes": list(dict.fromkeys(changes))}


def summarise(parsed: dict[str, Any], returncode: int) -> str:
    hosts = parsed["hosts"]
    if not hosts:
        return f"drift: unknown (ansible-playbook exited {returncode} without a recap)"
    changed = sum(c.get("changed", 0) for c in hosts.values())
    broken = sorted(h for h, c in hosts.items() if c.get("failed", 0) or c.get("unreachable", 0))
    text = "drift: none" if changed == 0 else f"drift: {changed} change{'s' if changed != 1 else ''}"
    if changed:
        text += " on " + ", ".join(sorted(h for h, c in hosts.items() if c.get("changed", 0)))
    if broken:
        text += f" (check run failed or unreachable on {', '.join(broken)})"
    return text


def check(
    inventory: str,
    out: Path,
    playbook: str = "playbooks/site.yml",
    env: dict[str, str] | None = None,
    limit: str | None = None,
) -> dict[str, Any]:
    """Run the check, keep its full output as drift.log, return the summary for report.json."""
    argv = command(inventory, playbook, limit)
    proc = run(argv, check=False, capture=True, cwd=ROOT, env={"ANSIBLE_NOCOLOR": "1", **(env or {})})
    (out / "drift.log").write_text(proc.stdout or "")
    parsed = parse(proc.stdout or "")
    keys = ("changed", "failed", "unreachable")
    hosts = {h: {k: c.get(k, 0) for k in keys} for h, c in parsed["hosts"].items()}
    return {
        "command": " ".join(argv),
        "returncode": proc.returncode,
        "summary": summarise(parsed, proc.returncode),
        "hosts": hosts,
        "changes": parsed["changes"],
        "log": "drift.log",
    }
