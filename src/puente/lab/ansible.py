"""ansible-playbook / ansible-inventory against the lab inventory (printed like every other step)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from puente.lab import paths
from puente.shell import ROOT, CommandError, run

BIN = ROOT / ".venv" / "bin"


def _tool(name: str) -> str:
    path = BIN / name
    return str(path.relative_to(ROOT)) if path.exists() else name


def base_args(inventory: Path = paths.INVENTORY) -> list[str]:
    return [
        "-i",
        str(inventory.relative_to(ROOT)),
        "--vault-password-file",
        str(paths.VAULT_PASSWORD_FILE.relative_to(ROOT)),
    ]


def check_inventory() -> None:
    """Let Ansible parse the inventory and group_vars (vault included) before any node is touched."""
    argv = [_tool("ansible-inventory"), *base_args(), "--graph"]
    proc = run(argv, capture=True, check=False, quiet=True)
    bad = [line for line in (proc.stdout or "").splitlines() if "[WARNING]" in line and "inventory" in line]
    if proc.returncode != 0 or bad:
        raise CommandError(
            argv, proc.returncode or 1, "Ansible cannot use the lab inventory:\n" + proc.stdout
        )


def playbook(name: str, extra: Sequence[str] = (), limit: Sequence[str] | None = None) -> None:
    argv = [_tool("ansible-playbook"), *base_args(), f"playbooks/{name}"]
    if limit:
        argv += ["--limit", ",".join(limit)]
    argv += list(extra)
    run(argv, env={"ANSIBLE_FORCE_COLOR": "1"} if os.isatty(1) else None)
