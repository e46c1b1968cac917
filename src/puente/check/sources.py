"""Reading the inventory sources without losing a problem: Ansible warns about a source no plugin can
parse (and goes on without its hosts), and its error for a vars file it cannot read does not always name
the file. Both become findings here, naming the file."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from puente.check.findings import Finding, show_path
from puente.check.vault import first_line


def inventory_manager(loader: Any, sources: list[str], problems: list[Finding]) -> Any:
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
    reasons = [first_line(f) for f in failures]
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


def inventory_dirs(sources: Iterable[str]) -> list[Path]:
    dirs: list[Path] = []
    for source in sources:
        if "," in source and not os.path.exists(source):
            continue
        path = Path(source).resolve()
        d = path if path.is_dir() else path.parent
        if d not in dirs:
            dirs.append(d)
    return dirs


def culprit(loader: Any, dirs: Iterable[Path], exc: Exception) -> tuple[str, str]:
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
                    return show_path(path), first_line(failure)
    return "inventory", first_line(exc)


def hosts_of(inventory: Any, pattern: str) -> list[Any]:
    """The hosts of a play's pattern; a pattern naming only absent groups (`sqs` outside the lab) is no
    host, without Ansible's "could not match" warning."""
    names = [p.lstrip("&!") for p in re.split(r"[:,]", pattern) if p]
    if not any(
        n in ("all", "*") or n in inventory.groups or n in inventory.hosts or re.search(r"[*?\[~]", n)
        for n in names
    ):
        return []
    return list(inventory.get_hosts(pattern))
