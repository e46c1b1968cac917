"""Walking the variables Ansible resolved: every string inside a value, and where Ansible read it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from puente.check.findings import show_path

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
