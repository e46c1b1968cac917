"""ansible-playbook / ansible-inventory against the lab inventory (printed like every other step)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from puente.lab import paths
from puente.shell import ROOT, CommandError, run

BIN = ROOT / ".venv" / "bin"


def rel(path: Path) -> str:
    """A path as an operator in the checkout would type it."""
    return os.path.relpath(path, ROOT)


def tool(name: str) -> str:
    path = BIN / name
    return rel(path) if path.exists() else name


def base_args(inventory: Path = paths.INVENTORY) -> list[str]:
    return ["-i", rel(inventory), "--vault-password-file", rel(paths.VAULT_PASSWORD_FILE)]


def check_inventory() -> None:
    """Let Ansible parse the inventory and group_vars (vault included) before any node is touched."""
    argv = [tool("ansible-inventory"), *base_args(), "--graph"]
    proc = run(argv, capture=True, check=False, quiet=True)
    out = proc.stdout or ""
    bad = [line for line in out.splitlines() if "[WARNING]" in line and "inventory" in line.lower()]
    if proc.returncode != 0 or bad:
        raise CommandError(argv, proc.returncode or 1, "Ansible cannot use the lab inventory:\n" + out)


def playbook(name: str, extra: Sequence[str] = (), limit: Sequence[str] | None = None) -> None:
    argv = [tool("ansible-playbook"), *base_args(), f"playbooks/{name}"]
    if limit:
        argv += ["--limit", ",".join(limit)]
    argv += list(extra)
    run(argv, env={"ANSIBLE_FORCE_COLOR": "1"} if os.isatty(1) else None)
