"""Which vault password an inventory command passes to Ansible: the operator's (--vault-id,
--vault-password-file, ANSIBLE_VAULT_* in the environment), else the inventory's own lab-only password file
if it has one (the lab's; a production inventory has none and its vault stays closed without the
operator's password)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

LAB_VAULT_FILE = "vault-password.lab-only"


def password_files(
    inventories: Sequence[str | Path], given: Sequence[str], vault_ids: Sequence[str]
) -> list[str]:
    """The password files to pass: ``given`` if the operator named any vault, else the lab-only ones."""
    if vault_ids or given or any(k.startswith("ANSIBLE_VAULT_") for k in os.environ):
        return list(given)
    return [str(Path(i) / LAB_VAULT_FILE) for i in inventories if (Path(i) / LAB_VAULT_FILE).is_file()]


def ansible_args(
    inventories: Sequence[str | Path], given: Sequence[str], vault_ids: Sequence[str]
) -> list[str]:
    """``--vault-id``/``--vault-password-file`` arguments for ansible-playbook."""
    args = [a for v in vault_ids for a in ("--vault-id", v)]
    return args + [
        a for f in password_files(inventories, given, vault_ids) for a in ("--vault-password-file", f)
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--vault-id and --vault-password-file, as ansible-playbook's, with this module's default."""
    parser.add_argument(
        "--vault-id", action="append", default=[], help="as ansible-playbook's (ID@FILE); repeatable"
    )
    parser.add_argument(
        "--vault-password-file",
        action="append",
        default=[],
        help=f"as ansible-playbook's; default: ANSIBLE_VAULT_* from the environment, else the inventory's "
        f"{LAB_VAULT_FILE} if it has one",
    )
