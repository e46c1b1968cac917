"""Rule 2: secrets are real and encrypted.

- A value still ``CHANGE-ME`` (or another placeholder) anywhere, or a secret-named variable (``vault_*``,
  ``*password*``, ``*secret*``, ``*token*``, ``*api_key*``, ``*cookie*``) holding a stand-in such as
  ``secret`` or ``xxx``: in every inventory (a decrypted vault is inspected; without its password it is not).
- Outside the lab: a vault file (``group_vars/**/vault*``, ``host_vars/**/vault*``) that is not
  ansible-vault encrypted, a ``vault_*`` secret in a plain-text file, and a vault password file inside
  the inventory. The lab is recognised by its explicit marker ``puente_environment: lab``
  (inventories/lab/group_vars/lab/overrides.yml): it commits its vault password on purpose.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from puente.check.findings import Finding, hosts_phrase, show_path
from puente.check.inventory import Deployment
from puente.check.values import MAGIC_VARS, origin, origin_path, walk_strings
from puente.placeholders import MARKER

# A marker left for a person to replace, anywhere in a value (shared with the stack's validation).
PLACEHOLDER = MARKER
# A whole value that only stands in for a secret.
STAND_IN = re.compile(
    r"(?i)^(secret|password|passw0rd|changeit|todo|tbd|dummy|example|placeholder|x{3,}|\*{3,})$"
)
SECRET_NAME = re.compile(r"(?i)(^vault_|password|passwd|secret|token|api_key|cookie)")
_VAULT_FILE = re.compile(r"^vault([._-].*)?$")
_PASSWORD_FILE = re.compile(r"(?i)vault[-_.]?pass")


def check(d: Deployment) -> list[Finding]:
    out = _placeholders(d)
    if not d.is_lab:
        out += _vault_files(d) + _plain_vault_vars(d) + _password_files(d)
    return out


def _placeholders(d: Deployment) -> list[Finding]:
    seen: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (where, variable, value) -> hosts
    for name, host in sorted(d.hosts.items()):
        for var, value in host.vars.items():
            if var in MAGIC_VARS:
                continue
            for path, text in walk_strings(value, var):
                if PLACEHOLDER.search(text) or (SECRET_NAME.search(path) and STAND_IN.match(text.strip())):
                    seen[(origin(text) or origin(value), path, text)].append(name)
    return [
        Finding(
            "secret-placeholder",
            f"{where or 'host(s) ' + hosts_phrase(hosts)} {path}",
            f"the value is still the placeholder {text!r} (for {len(hosts)} host(s): {hosts_phrase(hosts)}).",
            "set the real value; keep secrets in the inventory's encrypted vault (ansible-vault edit "
            "group_vars/all/vault.yml).",
        )
        for (where, path, text), hosts in sorted(seen.items())
    ]


def vault_files(d: Deployment) -> list[Path]:
    found = []
    for base in d.inventory_dirs:
        for sub in ("group_vars", "host_vars"):
            for path in sorted((base / sub).rglob("*")) if (base / sub).is_dir() else []:
                if path.is_file() and _VAULT_FILE.match(path.name) and path.suffix != ".example":
                    found.append(path)
    return found


def _is_encrypted(path: Path) -> bool:
    from ansible.parsing.vault import is_encrypted_file

    with path.open("rb") as fh:
        return bool(is_encrypted_file(fh))


def _vault_files(d: Deployment) -> list[Finding]:
    return [
        Finding(
            "vault-not-encrypted",
            show_path(path),
            "this vault file is plain text: its secrets are readable by anyone who can read the repository.",
            f"encrypt it (ansible-vault encrypt --vault-id <env>@<password file> {show_path(path)}) and "
            "treat the secrets it held as leaked if it was ever committed.",
        )
        for path in vault_files(d)
        if not _is_encrypted(path)
    ]


def _plain_vault_vars(d: Deployment) -> list[Finding]:
    from ansible.parsing.vault import EncryptedString

    vaults = set(vault_files(d))
    seen: dict[tuple[str, str], None] = {}
    for host in d.hosts.values():
        for var, value in host.vars.items():
            path = origin_path(value)
            if not var.startswith("vault_") or isinstance(value, EncryptedString) or path is None:
                continue
            if path in vaults or not path.is_file() or _is_encrypted(path):
                continue
            seen.setdefault((origin(value), var), None)
    return [
        Finding(
            "vault-not-encrypted",
            f"{where} {var}",
            "a vault_* secret is written in a plain-text file.",
            "move it into the inventory's encrypted vault (group_vars/all/vault.yml) or encrypt the value "
            f"(ansible-vault encrypt_string --stdin-name {var}).",
        )
        for where, var in sorted(seen)
    ]


def _password_files(d: Deployment) -> list[Finding]:
    out = []
    for base in d.inventory_dirs:
        for path in sorted(base.iterdir()) if base.is_dir() else []:
            if path.is_file() and _PASSWORD_FILE.search(path.name):
                out.append(
                    Finding(
                        "vault-password-committed",
                        show_path(path),
                        "a vault password file sits in the inventory, next to the vault it opens (only the "
                        "lab, marked `puente_environment: lab`, does this on purpose).",
                        "remove it and rotate the vault password (ansible-vault rekey); keep the password "
                        "outside the repository (inventories/production/README.md).",
                    )
                )
    return out
