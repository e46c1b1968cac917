"""The DataLoader ``puente check`` reads with: the vault secrets given on the command line (and Ansible's
ANSIBLE_VAULT_* settings), and, when there are none, encrypted files skipped and recorded instead of
failing — their secrets are simply not inspected."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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
            problems.append(f"vault id {slug}: {first_line(exc)}")
            continue
        secrets.append((vault_id, secret))
    loader.set_vault_secrets(secrets)
    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:  # a second check in one process (tests): inline !vault values decrypt with these secrets
        current.secrets = secrets
    return loader, problems
