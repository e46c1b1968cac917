"""What the playbooks promise to apply where: the plays of ``site.yml`` (host pattern → roles) and each
role's contract (``meta/argument_specs.yml`` required inputs, ``defaults/main.yml``, ``meta/main.yml``
platforms). Read from the files, so a role that gains a required input or a platform is checked for it
without a change here."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

_IMPORT_KEYS = ("ansible.builtin.import_playbook", "import_playbook")


@dataclass(frozen=True)
class Play:
    pattern: str  # the play's `hosts:` (an Ansible host pattern)
    roles: tuple[str, ...]
    source: Path


@dataclass(frozen=True)
class Platform:
    name: str  # as in galaxy_info.platforms: "Debian"
    versions: tuple[str, ...]  # "bookworm", "12" or "all"

    def accepts(self, distribution: str, release: str, major: str, version: str) -> bool:
        if distribution.lower() != self.name.lower():
            return False
        wanted = {v.lower() for v in self.versions}
        return "all" in wanted or bool(wanted & {release.lower(), major.lower(), version.lower()})


@dataclass(frozen=True)
class RoleContract:
    name: str
    required: tuple[
        str, ...
    ]  # required inputs of the `main` entry point (a default may be an empty stand-in)
    defaults: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)  # of the required inputs
    platforms: tuple[Platform, ...] = ()
    secrets: tuple[str, ...] = ()  # inputs whose default reads a vault_* variable (must render, too)


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        return None


def plays(playbook: Path) -> list[Play]:
    """Every play reachable from ``playbook`` through import_playbook, in order (each file once)."""
    out: list[Play] = []
    seen: set[Path] = set()

    def walk(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        for entry in _yaml(path) or []:
            if not isinstance(entry, dict):
                continue
            imported = next((entry[k] for k in _IMPORT_KEYS if k in entry), None)
            if isinstance(imported, str):
                walk(path.parent / imported)
                continue
            roles = tuple(
                str(r if isinstance(r, str) else r.get("role") or r.get("name"))
                for r in entry.get("roles") or []
                if isinstance(r, str | dict)
            )
            if roles and isinstance(entry.get("hosts"), str):
                out.append(Play(entry["hosts"], roles, path))

    walk(playbook)
    return out


def with_dependencies(roles_dir: Path, roles: tuple[str, ...]) -> tuple[str, ...]:
    """``roles`` with their ``meta/main.yml`` dependencies, each before the role that needs it (as Ansible
    loads them: a dependency's defaults come first, the role's own override them), each role once."""
    out: list[str] = []

    def add(name: str, trail: tuple[str, ...]) -> None:
        if name in out or name in trail:
            return
        for dep in (_yaml(roles_dir / name / "meta" / "main.yml") or {}).get("dependencies") or []:
            dep_name = dep if isinstance(dep, str) else (dep or {}).get("role") or (dep or {}).get("name")
            if dep_name:
                add(str(dep_name), (*trail, name))
        out.append(name)

    for role in roles:
        add(role, ())
    return tuple(out)


def _text(description: Any) -> str:
    parts = description if isinstance(description, list) else [description]
    return " ".join(" ".join(str(p) for p in parts).split())


@cache
def role_contract(roles_dir: Path, name: str) -> RoleContract:
    role = roles_dir / name
    defaults = _yaml(role / "defaults" / "main.yml") or {}
    specs = (_yaml(role / "meta" / "argument_specs.yml") or {}).get("argument_specs") or {}
    options = (specs.get("main") or {}).get("options") or {}
    required = tuple(
        sorted(k for k, spec in options.items() if isinstance(spec, dict) and spec.get("required"))
    )
    galaxy = (_yaml(role / "meta" / "main.yml") or {}).get("galaxy_info") or {}
    platforms = tuple(
        Platform(str(p.get("name", "")), tuple(str(v) for v in p.get("versions") or ["all"]))
        for p in galaxy.get("platforms") or []
        if isinstance(p, dict)
    )
    descriptions = {k: _text(options[k].get("description", "")) for k in required}
    secrets = tuple(sorted(k for k, v in defaults.items() if isinstance(v, str) and "vault_" in v))
    return RoleContract(name, required, dict(defaults), descriptions, platforms, secrets)
