"""Helpers of the `puente check` tests: copies of real inventories to break one thing in, and the two ways
to run the check (the real CLI in a subprocess, or the rules in-process)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
LAB = REPO / "inventories" / "lab"
LAB_VAULT_PASSWORD = "vault-password.lab-only"
FILLED = DATA / "production-filled"
FILLED_OUTPUTS = DATA / "production-filled-outputs.json"
FILLED_VAULT_PASSWORD = DATA / "production-filled.vault-password"


def copy_lab(tmp_path: Path) -> Path:
    """A copy of inventories/lab (with its vault and lab-only password, without a generated scale.yml)."""
    dest = tmp_path / "lab"
    shutil.copytree(LAB, dest, ignore=shutil.ignore_patterns("scale.yml"))
    return dest


def OVERRIDES(lab: Path) -> Path:
    """The lab's override file in a copy of the lab inventory."""
    return lab / "group_vars" / "lab" / "overrides.yml"


def copy_filled(tmp_path: Path) -> Path:
    """A copy of the filled-in production fixture, with the stack outputs file it reads beside it."""
    dest = tmp_path / FILLED.name
    shutil.copytree(FILLED, dest)
    shutil.copy(FILLED_OUTPUTS, tmp_path / FILLED_OUTPUTS.name)
    return dest


def edit_yaml(path: Path, change: Callable[[Any], object]) -> None:
    """Rewrite a YAML file after ``change(data)`` changed its data in place (its return value is ignored)."""
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def lab_hosts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """host -> its vars in the site groups (under `lab`) of inventories/lab/hosts.yml."""
    out: dict[str, dict[str, Any]] = {}
    for site in ("onprem", "cloud", "witness"):
        out.update(data["all"]["children"]["lab"]["children"][site]["hosts"])
    return out


def vault_edit(path: Path, password_file: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Decrypt an ansible-vault file, change its variables, encrypt it again with the same password."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password_file.read_text().strip().encode()))])
    data = yaml.safe_load(vault.decrypt(path.read_text()))
    change(data)
    path.write_bytes(vault.encrypt(yaml.safe_dump(data, sort_keys=False)))


def run_check(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m puente.cli check ARGS`` from the repository root, as an operator runs it."""
    argv = [sys.executable, "-m", "puente.cli", "check", *[str(a) for a in args]]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT_")}
    return subprocess.run(
        argv, cwd=REPO, env={**clean, **(env or {})}, capture_output=True, text=True, check=False, timeout=600
    )


def check(inventory: Path, password_files: Sequence[Path] = ()) -> list[str]:
    """The findings of the inventory rules, in-process (as the preflight's lookup runs them)."""
    from puente.check.inventory import prepare_ansible

    prepare_ansible()
    from puente.check import engine
    from puente.check import inventory as check_inventory

    deployment = check_inventory.load([str(inventory)], vault_password_files=[str(p) for p in password_files])
    return [str(f) for f in engine.check_inventory(deployment).findings]


def check_lab(inventory: Path) -> list[str]:
    return check(inventory, [inventory / LAB_VAULT_PASSWORD])


def one(findings: list[str], *parts: str) -> str:
    """The single finding that contains every part; fails listing them all otherwise."""
    matching = [f for f in findings if all(p in f for p in parts)]
    assert len(matching) == 1, f"expected one finding with {parts}, got:\n" + "\n".join(findings)
    return matching[0]
