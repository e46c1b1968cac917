"""One problem, said once: which rule, where (host, group, file:line, variable), what is wrong, what to do."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Finding:
    rule: str  # short id, e.g. "etcd-quorum" (docs/CHECK.md lists them)
    where: str  # "inventories/production/hosts.yml:12 host edge1", "group etcd", "Pulumi.prod.yaml:17 ..."
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.problem} Fix: {self.fix}"

    def block(self) -> str:
        """Three lines for a terminal: rule and where, what is wrong, what to do."""
        return f"[{self.rule}] {self.where}\n    {self.problem}\n    fix: {self.fix}"


def show_path(path: str | os.PathLike[str]) -> str:
    """A path as the operator typed it: relative to the working directory when it is under it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def hosts_phrase(hosts: Iterable[str], limit: int = 4) -> str:
    """``a, b, c`` or ``a, b, c, d and 3 more``: enough to find them, short enough to read."""
    names = sorted(set(hosts))
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"
