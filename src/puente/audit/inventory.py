"""Which hosts a control applies to, read from the Ansible inventory the roles were applied with.

The inventory is parsed by Ansible itself (``ansible-inventory --list``, through pytest-testinfra's
AnsibleRunner), so group children, ``scale.yml`` files and directories behave exactly as for the playbooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from testinfra.utils.ansible_runner import AnsibleRunner

from puente.ansible_json import play_results
from puente.sites import SITES


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


# Connection variables as Ansible itself resolves them (templating included, e.g. a key path built from
# `inventory_dir`): the debug action runs on the controller, so this touches no host.
_SSH_VARS = (
    "{{ {'connection': ansible_connection | default('ssh'), "
    "'host': ansible_host | default(inventory_hostname), 'user': ansible_user | default(''), "
    "'port': ansible_port | default(''), 'key': ansible_ssh_private_key_file | default(''), "
    "'args': ansible_ssh_common_args | default(''), "
    "'become': ansible_become | default(false) | bool} }}"
)


def ssh_targets(path: str) -> dict[str, dict[str, Any]]:
    """host -> {host, user, port, key, args, become} for the ssh backend, resolved by `ansible`."""
    return {name: dict(value) for name, value in resolve(path, _SSH_VARS, "the connection variables").items()}


def resolve(path: str, expression: str, what: str, pattern: str = "all") -> dict[str, Any]:
    """host -> ``expression`` (Jinja) as Ansible resolves it for each host of ``pattern``, on the
    controller (the debug action): the connection's variables, or what a control compares a host with
    (e.g. the VPN's agreed proposals, from the inventory the roles were applied with)."""
    import os
    import subprocess

    env = {
        **os.environ,
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = ["ansible", pattern, "-i", path, "-m", "ansible.builtin.debug", "-a", f"msg={expression}"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        raise ValueError(f"ansible could not resolve {what} of {path}: {(proc.stdout + proc.stderr)[-1500:]}")
    return {name: data["msg"] for name, data in play_results(proc.stdout).items()}
