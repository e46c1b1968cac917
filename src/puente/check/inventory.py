"""The inventory as Ansible sees it when it runs ``playbooks/site.yml``.

ansible-core's InventoryManager parses the sources with the configured inventory plugins (``pulumi_stack``
included) and its VariableManager resolves each host's variables with Ansible's precedence, with the
DataLoader's base directory set to ``playbooks/`` (so ``playbook_dir`` is what a play sees), under the
defaults of the roles ``site.yml`` applies to the host, their dependencies (``puente``) first.
Values are kept
untemplated, each tagged by Ansible with the file and line it came from; :meth:`Deployment.template`
renders one when a rule needs the rendered value.

Without a vault password an encrypted vault file is skipped, not an error: its secrets are simply not
inspected (:attr:`Deployment.uninspected`). Anything that stops Ansible from reading the inventory is a
finding of rule ``inventory``, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from puente.check import playbooks
from puente.check.findings import Finding
from puente.check.sources import culprit, hosts_of, inventory_dirs, inventory_manager
from puente.check.vault import first_line, new_loader
from puente.shell import ROOT
from puente.sites import SITES

PLAYBOOK_DIR = ROOT / "playbooks"
ROLES_DIR = ROOT / "roles"
LAB_ENVIRONMENT = "lab"

_UNDEFINED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")


class TemplateProblem(Exception):
    """A value that cannot be rendered; ``undefined`` names the variable missing, when that is why."""

    def __init__(self, message: str, undefined: str = "", vault: bool = False) -> None:
        super().__init__(message)
        self.undefined = undefined
        self.vault = vault


@dataclass(frozen=True)
class Host:
    name: str
    groups: frozenset[str]
    vars: Mapping[str, Any]  # resolved by VariableManager, untemplated (Origin-tagged)
    roles: tuple[str, ...]  # roles site.yml applies to it, in play order


@dataclass
class Deployment:
    sources: list[str]
    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> member hosts (with children)
    sites: dict[str, list[str]] = field(default_factory=dict)  # site group -> member hosts
    inventory_dirs: list[Path] = field(default_factory=list)
    uninspected: list[Path] = field(default_factory=list)  # encrypted files read without a password
    problems: list[Finding] = field(default_factory=list)  # what kept Ansible from reading it all
    loader: Any = None

    @property
    def environment(self) -> str:
        """``lab`` only when every host says ``puente_environment: lab`` (the lab's explicit marker)."""
        values = {str(h.vars.get("puente_environment", "")) for h in self.hosts.values()}
        return values.pop() if len(values) == 1 else ""

    @property
    def is_lab(self) -> bool:
        return self.environment == LAB_ENVIRONMENT

    def members(self, group: str) -> list[str]:
        return self.groups.get(group, [])

    def sites_of(self, host: str) -> list[str]:
        return [s for s, members in self.sites.items() if host in members]

    def value(self, host: str, name: str, default: Any = None) -> Any:
        """The host's value of ``name``, falling back to the defaults of the roles applied to it."""
        h = self.hosts[host]
        if name in h.vars:
            return h.vars[name]
        for role in h.roles:
            defaults = playbooks.role_contract(ROLES_DIR, role).defaults
            if name in defaults:
                return defaults[name]
        return default

    def template(self, host: str, value: Any) -> Any:
        """Render ``value`` with the host's variables, as a task would; raise :class:`TemplateProblem`."""
        from ansible.errors import AnsibleError, AnsibleUndefinedVariable
        from ansible.template import Templar

        try:
            return Templar(loader=self.loader, variables=self.hosts[host].vars).template(value)
        except AnsibleUndefinedVariable as exc:
            found = _UNDEFINED.search(str(exc))
            raise TemplateProblem(first_line(exc), found.group(1) if found else "") from exc
        except AnsibleError as exc:
            raise TemplateProblem(first_line(exc), vault="vault" in str(exc).lower()) from exc


def _with_role_defaults(loader: Any, hvars: Mapping[str, Any], roles: tuple[str, ...]) -> dict[str, Any]:
    """The host's variables over the defaults of the roles applied to it (Ansible's lowest precedence),
    so a value templated from a role default (``puente_db_user``...) renders as it does in a play. Read
    with Ansible's loader: its strings are trusted templates, as a play's role defaults are."""
    merged: dict[str, Any] = {}
    for role in roles:
        path = ROLES_DIR / role / "defaults" / "main.yml"
        if path.is_file():
            merged.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
    merged.update(hvars)
    return merged


def prepare_ansible() -> None:
    """For a process that is not ansible itself (the CLI, tests): read this checkout's ansible.cfg (its
    inventory plugin path) and set up the plugin loader, once. Must run before ansible is imported."""
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader([])


def load(
    sources: Sequence[str],
    *,
    loader: Any = None,
    playbook_dir: Path = PLAYBOOK_DIR,
    vault_ids: Sequence[str] = (),
    vault_password_files: Sequence[str] = (),
) -> Deployment:
    """Read ``sources`` as ``ansible-playbook -i SOURCE playbook_dir/site.yml`` would.

    ``loader``: the running playbook's DataLoader (the preflight plugin, which has the vault secrets);
    otherwise a new one with the given vault ids/password files.
    """
    from ansible.errors import AnsibleError
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    deployment = Deployment(sources=[str(s) for s in sources])
    if loader is None:
        loader, vault_problems = new_loader(vault_ids, vault_password_files)
        deployment.problems += [
            Finding(
                "vault", "vault password", p, "pass a readable --vault-id ID@FILE or --vault-password-file."
            )
            for p in vault_problems
        ]
    loader.set_basedir(str(playbook_dir))
    deployment.loader = loader
    deployment.inventory_dirs = inventory_dirs(deployment.sources)
    try:
        inventory = inventory_manager(loader, deployment.sources, deployment.problems)
    except AnsibleError as exc:
        deployment.problems.append(
            Finding(
                "inventory",
                ", ".join(deployment.sources),
                first_line(exc),
                "fix the inventory so `ansible-inventory -i SOURCE --list` reads it.",
            )
        )
        return deployment
    manager = VariableManager(loader=loader, inventory=inventory)
    HostVars(inventory=inventory, variable_manager=manager, loader=loader)  # `hostvars`, as in a play

    plays = playbooks.plays(playbook_dir / "site.yml")
    roles_of: dict[str, list[str]] = {}
    for play in plays:
        for h in hosts_of(inventory, play.pattern):
            roles_of.setdefault(h.name, [])
            roles_of[h.name] += [
                r for r in playbooks.with_dependencies(ROLES_DIR, play.roles) if r not in roles_of[h.name]
            ]

    seen_errors: set[tuple[str, str]] = set()
    for h in inventory.get_hosts("all"):
        try:
            hvars = manager.get_vars(host=h, include_hostvars=True)
        except AnsibleError as exc:
            where, message = culprit(loader, [*deployment.inventory_dirs, playbook_dir], exc)
            if (where, message) not in seen_errors:
                seen_errors.add((where, message))
                deployment.problems.append(
                    Finding(
                        "inventory",
                        where,
                        f"Ansible cannot read this file (host {h.name} needs it): {message}",
                        "fix that file (its YAML, or give the vault password that opens it).",
                    )
                )
            continue
        groups = frozenset(g.name for g in h.get_groups() if g.name not in ("all", "ungrouped"))
        roles = tuple(roles_of.get(h.name, ()))
        deployment.hosts[h.name] = Host(h.name, groups, _with_role_defaults(loader, hvars, roles), roles)
    if not inventory.get_hosts("all") and not deployment.problems:
        deployment.problems.append(
            Finding(
                "inventory",
                ", ".join(deployment.sources),
                "the inventory has no host.",
                "list the nodes in the inventory's hosts.yml.",
            )
        )

    for name, group in inventory.groups.items():
        if name in ("all", "ungrouped"):
            continue
        # only hosts whose variables could be read (the others are findings already)
        deployment.groups[name] = sorted(h.name for h in group.get_hosts() if h.name in deployment.hosts)
    named = {str(h.vars.get("puente_site")) for h in deployment.hosts.values() if h.vars.get("puente_site")}
    for name in inventory.groups:
        if name in SITES or name in named:
            deployment.sites[name] = deployment.groups.get(name, [])
    deployment.uninspected = list(getattr(loader, "skipped", []))
    return deployment
