"""The inventory as Ansible sees it when it runs ``playbooks/site.yml``.

ansible-core's InventoryManager parses the sources with the configured inventory plugins (``pulumi_stack``
included) and its VariableManager resolves each host's variables with Ansible's precedence, with the
DataLoader's base directory set to ``playbooks/`` — so ``playbooks/group_vars`` apply exactly where they
apply in a playbook run (``playbooks/group_vars/all.yml`` outranks the inventory's ``group_vars/all``,
``playbooks/group_vars/<group>.yml`` its ``group_vars/<group>``; docs/CHECK.md). Values are kept
untemplated, each tagged by Ansible with the file and line it came from; :meth:`Deployment.template`
renders one when a rule needs the rendered value.

Without a vault password an encrypted vault file is skipped, not an error: its secrets are simply not
inspected (:attr:`Deployment.uninspected`). Anything that stops Ansible from reading the inventory is a
finding of rule ``inventory``, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from puente.audit.inventory import SITES
from puente.check import playbooks
from puente.check.findings import Finding, show_path
from puente.shell import ROOT

PLAYBOOK_DIR = ROOT / "playbooks"
ROLES_DIR = ROOT / "roles"
LAB_ENVIRONMENT = "lab"

# Variables Ansible makes up (not set by anyone): no rule reads them as inventory values.
MAGIC_VARS = frozenset(
    {
        "groups",
        "group_names",
        "hostvars",
        "inventory_hostname",
        "inventory_hostname_short",
        "inventory_dir",
        "inventory_file",
        "playbook_dir",
        "omit",
        "ansible_version",
        "ansible_config_file",
        "ansible_playbook_python",
        "ansible_facts",
        "ansible_check_mode",
        "ansible_diff_mode",
        "ansible_forks",
        "ansible_inventory_sources",
        "ansible_run_tags",
        "ansible_skip_tags",
        "ansible_verbosity",
        "ansible_limit",
        "role_names",
        "ansible_play_hosts",
        "ansible_play_hosts_all",
        "ansible_play_batch",
        "ansible_play_name",
        "play_hosts",
        "ansible_dependent_role_names",
        "ansible_play_role_names",
        "ansible_role_names",
        "ansible_collection_name",
        "ansible_search_path",
    }
)

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
            raise TemplateProblem(_first_line(exc), found.group(1) if found else "") from exc
        except AnsibleError as exc:
            raise TemplateProblem(_first_line(exc), vault="vault" in str(exc).lower()) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def prepare_ansible() -> None:
    """For a process that is not ansible itself (the CLI, tests): read this checkout's ansible.cfg (its
    inventory plugin path) and set up the plugin loader, once. Must run before ansible is imported."""
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader([])


def new_loader(
    vault_ids: Sequence[str] = (), vault_password_files: Sequence[str] = ()
) -> tuple[Any, list[str]]:
    """A DataLoader with the vault secrets given (plus ANSIBLE_VAULT_* from the environment/config), which
    skips encrypted files when it has none. Returns it and the problems met reading the secrets."""
    import ansible.constants as C
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecretsContext, get_file_vault_secret, is_encrypted_file

    class SkippingLoader(DataLoader):
        """Reads what it can; an encrypted file without any vault secret counts as empty (recorded)."""

        skipped: list[Path]

        def load_from_file(self, file_name: str, *args: Any, **kwargs: Any) -> Any:
            path = Path(self.path_dwim(file_name))
            if not self._vault.secrets and path.is_file():
                with path.open("rb") as fh:
                    if is_encrypted_file(fh):
                        if path not in self.skipped:
                            self.skipped.append(path)
                        return {}
            return super().load_from_file(file_name, *args, **kwargs)

    loader = SkippingLoader()
    loader.skipped = []
    problems: list[str] = []
    slugs = [*vault_ids, *C.DEFAULT_VAULT_IDENTITY_LIST]
    files = [
        *vault_password_files,
        *([C.DEFAULT_VAULT_PASSWORD_FILE] if C.DEFAULT_VAULT_PASSWORD_FILE else []),
    ]
    slugs += [f"{C.DEFAULT_VAULT_IDENTITY}@{f}" for f in files]
    secrets = []
    for slug in slugs:
        vault_id, _, source = str(slug).rpartition("@")
        vault_id = vault_id or C.DEFAULT_VAULT_IDENTITY
        if source in ("prompt", "prompt_ask_vault_pass"):
            problems.append(f"vault id {slug}: puente check does not prompt; give a password file or script")
            continue
        try:
            secret = get_file_vault_secret(
                filename=os.path.expanduser(source), vault_id=vault_id, loader=loader
            )
            secret.load()
        except AnsibleError as exc:
            problems.append(f"vault id {slug}: {_first_line(exc)}")
            continue
        secrets.append((vault_id, secret))
    loader.set_vault_secrets(secrets)
    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:  # a second check in one process (tests): inline !vault values decrypt with these secrets
        current.secrets = secrets
    return loader, problems


def _inventory_manager(loader: Any, sources: list[str], problems: list[Finding]) -> Any:
    from ansible.inventory import manager

    class RecordingInventory(manager.InventoryManager):
        """Ansible warns about a source no plugin could parse and goes on without it; a check must not."""

        def parse_source(self, source: str, cache: bool = False) -> bool:
            if os.path.isdir(source):  # its files come back here one by one
                return bool(super().parse_source(source, cache=cache))
            failures: list[BaseException] = []
            warn = manager.display.error_as_warning

            def record(msg: str | None, exception: BaseException, **kwargs: Any) -> None:
                failures.append(exception)
                warn(msg, exception, **kwargs)

            manager.display.error_as_warning = record  # type: ignore[method-assign]
            try:
                parsed = super().parse_source(source, cache=cache)
            finally:
                manager.display.error_as_warning = warn  # type: ignore[method-assign]
            if not parsed:
                problems.append(_unparsed(source, failures))
            return bool(parsed)

    return RecordingInventory(loader=loader, sources=sources)


# What every inventory plugin that declines a file says; the other plugins' messages say what is wrong.
_DECLINED = ("not YAML inventory", "no root 'plugin' key", "does not have a valid", "Invalid filename")


def _unparsed(source: str, failures: list[BaseException]) -> Finding:
    path = Path(source)
    where = show_path(source)
    if "," not in source and not path.exists():
        return Finding(
            "inventory",
            where,
            "this inventory source does not exist.",
            "give the path of an inventory directory or file (-i inventories/production).",
        )
    reasons = [_first_line(f) for f in failures]
    detail = next((r for r in reasons if not any(d in r for d in _DECLINED)), reasons[0] if reasons else "")
    if path.suffix in (".yml", ".yaml", ".json"):
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            detail = "not valid YAML: " + " ".join(str(exc).split())
        except OSError as exc:
            detail = str(exc)
    return Finding(
        "inventory",
        where,
        f"no inventory plugin could read this file ({detail or 'no plugin wants it'}), so its hosts and "
        "groups are missing.",
        "fix the file (valid for the inventory plugin it is written for: YAML with a top-level `all:` "
        "group, or a plugin's config).",
    )


def _inventory_dirs(sources: Iterable[str]) -> list[Path]:
    dirs: list[Path] = []
    for source in sources:
        if "," in source and not os.path.exists(source):
            continue
        path = Path(source).resolve()
        d = path if path.is_dir() else path.parent
        if d not in dirs:
            dirs.append(d)
    return dirs


def _culprit(loader: Any, dirs: Iterable[Path], exc: Exception) -> tuple[str, str]:
    """Ansible's error while resolving variables does not always say which file: find the vars file that
    fails to load on its own. Returns (where, message)."""
    from ansible.errors import AnsibleError

    for base in dirs:
        for sub in ("group_vars", "host_vars"):
            for path in sorted((base / sub).rglob("*")) if (base / sub).is_dir() else []:
                if not path.is_file() or path.name.startswith(".") or path.suffix in (".example", ".md"):
                    continue
                try:
                    loader.load_from_file(str(path), cache="none")
                except AnsibleError as failure:
                    try:  # PyYAML says where (line, column); Ansible's message does not
                        yaml.safe_load(path.read_text())
                    except (yaml.YAMLError, UnicodeDecodeError) as detail:
                        return show_path(path), " ".join(str(detail).split())
                    return show_path(path), _first_line(failure)
    return "inventory", _first_line(exc)


def _hosts_of(inventory: Any, pattern: str) -> list[Any]:
    """The hosts of a play's pattern; a pattern naming only absent groups (`sqs` outside the lab) is no
    host, without Ansible's "could not match" warning."""
    names = [p.lstrip("&!") for p in re.split(r"[:,]", pattern) if p]
    if not any(
        n in ("all", "*") or n in inventory.groups or n in inventory.hosts or re.search(r"[*?\[~]", n)
        for n in names
    ):
        return []
    return list(inventory.get_hosts(pattern))


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
    deployment.inventory_dirs = _inventory_dirs(deployment.sources)
    try:
        inventory = _inventory_manager(loader, deployment.sources, deployment.problems)
    except AnsibleError as exc:
        deployment.problems.append(
            Finding(
                "inventory",
                ", ".join(deployment.sources),
                _first_line(exc),
                "fix the inventory so `ansible-inventory -i SOURCE --list` reads it.",
            )
        )
        return deployment
    manager = VariableManager(loader=loader, inventory=inventory)

    plays = playbooks.plays(playbook_dir / "site.yml")
    roles_of: dict[str, list[str]] = {}
    for play in plays:
        for h in _hosts_of(inventory, play.pattern):
            roles_of.setdefault(h.name, [])
            roles_of[h.name] += [r for r in play.roles if r not in roles_of[h.name]]

    seen_errors: set[tuple[str, str]] = set()
    for h in inventory.get_hosts("all"):
        try:
            hvars = manager.get_vars(host=h, include_hostvars=True)
        except AnsibleError as exc:
            where, message = _culprit(loader, [*deployment.inventory_dirs, playbook_dir], exc)
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
        deployment.hosts[h.name] = Host(h.name, groups, hvars, tuple(roles_of.get(h.name, ())))
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
    for child in inventory.groups["all"].child_groups:
        if child.name in SITES or child.name in named:
            deployment.sites[child.name] = deployment.groups.get(child.name, [])
    deployment.uninspected = list(getattr(loader, "skipped", []))
    return deployment


def walk_strings(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    """(key path, string) for every string inside a variable's value; vaulted strings are skipped."""
    from ansible.parsing.vault import EncryptedString

    if isinstance(value, EncryptedString):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from walk_strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}[{i}]")


def _origin_tag(value: Any) -> Any:
    # ansible-core 2.19 tags every value it reads with its Origin (file, line); the accessor is not public
    # API yet (constraints.txt pins ansible-core), so a missing one only costs the line numbers.
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:
        return None
    return Origin.get_tag(value)


def origin(value: Any) -> str:
    """``file:line`` where Ansible read the value (relative to the working directory), or ``""``."""
    tag = _origin_tag(value)
    if tag is None or not tag.path:
        return ""
    return f"{show_path(tag.path)}:{tag.line_num}" if tag.line_num else show_path(tag.path)


def origin_path(value: Any) -> Path | None:
    tag = _origin_tag(value)
    return Path(tag.path) if tag is not None and tag.path else None
