"""Run the API's own key management (``puente-api keys ...``) on an API node, through playbooks/keys.yml
(printed, like every command the CLI runs). The token of a new key comes back through a 0600 file on the
controller, never through Ansible's output. Used by ``puente keys`` and by the drills."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from puente.lab.ansible import rel, tool
from puente.shell import ROOT, CommandError, run
from puente.vaults import ansible_args

PLAYBOOK = ROOT / "playbooks" / "keys.yml"


class KeysResult(NamedTuple):
    """What ``puente-api keys`` exited with and printed on the API node."""

    rc: int
    stdout: str
    stderr: str


def run_keys(
    api_args: Sequence[str],
    inventories: Sequence[str | Path],
    *,
    vault_password_files: Sequence[str] = (),
    vault_ids: Sequence[str] = (),
    limit: str | None = None,
) -> KeysResult:
    """Run ``puente-api keys API_ARGS`` on an API node through playbooks/keys.yml (printed)."""
    with tempfile.TemporaryDirectory(prefix="puente-keys-") as tmp:
        out = Path(tmp) / "output.json"
        extra = Path(tmp) / "vars.json"
        extra.write_text(json.dumps({"api_keys_argv": list(api_args), "api_keys_output_file": str(out)}))
        argv: list[str | Path] = [tool("ansible-playbook")]
        for inventory in inventories:
            argv += ["-i", str(inventory)]
        argv += ansible_args(inventories, vault_password_files, vault_ids)
        if limit:
            argv += ["--limit", limit]
        argv += [rel(PLAYBOOK), "-e", f"@{extra}"]
        proc = run(argv, check=False, capture=True)
        if not out.is_file():
            raise CommandError([str(a) for a in argv], proc.returncode or 1, proc.stdout or "")
        result = json.loads(out.read_text())
    return KeysResult(int(result["rc"]), result["stdout"], result["stderr"])


def create(client: str, inventories: Sequence[str | Path], label: str | None = None) -> str:
    """A new key for ``client``; returns the token (the last line of ``puente-api keys create``)."""
    result = run_keys(["create", client] + (["--label", label] if label else []), inventories)
    if result.rc != 0 or not result.stdout.strip():
        raise CommandError(["puente-api", "keys", "create", client], result.rc or 1, result.stderr)
    return result.stdout.strip().splitlines()[-1].strip()
