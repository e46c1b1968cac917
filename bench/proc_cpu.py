"""CPU time of a process tree, read from /proc (shared by the benchmark scripts)."""

from __future__ import annotations

import os
from pathlib import Path


def tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants, the exited and
    reaped ones included (cutime/cstime: PostgreSQL backends end with their connection, Ansible's task
    workers with their task)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(v) for v in stats[pid][11:15]) / os.sysconf("SC_CLK_TCK")
        todo += children.get(pid, [])
    return total
