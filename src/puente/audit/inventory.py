"""Which hosts a control applies to, read from the Ansible inventory the roles were applied with.

The inventory is parsed by Ansible itself (``ansible-inventory --list``, through pytest-testinfra's
AnsibleRunner), so group children, ``scale.yml`` files and directories behave exactly as for the playbooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from testinfra.utils.ansible_runner import AnsibleRunner

SITES = ("onprem", "cloud", "witness")


@dataclass(frozen=True)
class Inventory:
    path: str
    groups_of: dict[str, list[str]]  # host -> sorted group names (without "all"/"ungrouped")

    @classmethod
    def load(cls, path: str) -> Inventory:
        runner = AnsibleRunner(path)
        hosts = runner.get_hosts("all")
        if not hosts:
            raise ValueError(f"inventory {path}: no hosts")
        groups_of: dict[str, list[str]] = {h: [] for h in hosts}
        for group in sorted(runner.inventory):
            if group in ("_meta", "all", "ungrouped"):
                continue
            for host in runner.get_hosts(group):
                groups_of[host].append(group)
        return cls(path=path, groups_of=groups_of)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inventory:
        return cls(path=data["path"], groups_of={h: list(g) for h, g in data["groups_of"].items()})

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "groups_of": self.groups_of}

    @property
    def hosts(self) -> list[str]:
        return sorted(self.groups_of)

    def hosts_in(self, groups: Iterable[str]) -> list[str]:
        wanted = set(groups)
        if "all" in wanted:
            return self.hosts
        return [h for h in self.hosts if wanted & set(self.groups_of[h])]

    def site_of(self, host: str) -> str:
        return next((g for g in self.groups_of[host] if g in SITES), "")
