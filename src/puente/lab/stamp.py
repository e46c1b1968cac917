"""Whether the lab changed since its last successful converge (an unchanged `lab up` only verifies).

The stamp records a hash of everything a converge depends on — roles, playbooks, shared templates, the
lab inventory, ansible.cfg, the wheelhouse and the node image — and the container id of every node.
Anything different (a new node, an edited role, a rebuilt image) means converge again; ``--converge``
forces it (e.g. to repair drift made by hand inside a node).
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
import urllib.request
from pathlib import Path

from puente.lab import paths
from puente.shell import ROOT

_INPUTS = ("roles", "playbooks", "templates", "ansible.cfg")
STAMP = paths.CACHE / "converged.json"


def _files(base: Path) -> list[Path]:
    if base.is_file():
        return [base]
    return sorted(
        p for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".retry"))
    )  # fmt: skip


def inputs_hash(image: str) -> str:
    digest = hashlib.sha256(image.encode())
    for base in [*(ROOT / name for name in _INPUTS), paths.INVENTORY, paths.WHEELHOUSE / ".puente-stamp"]:
        if not base.exists():
            continue
        for path in _files(base):
            digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def unchanged(image: str, node_ids: dict[str, str]) -> str | None:
    """When nothing changed, the time of the last converge; else None."""
    if not STAMP.exists():
        return None
    try:
        data = json.loads(STAMP.read_text())
    except json.JSONDecodeError:
        return None
    if data.get("inputs") == inputs_hash(image) and data.get("nodes") == node_ids:
        return str(data.get("at"))
    return None


def record(image: str, node_ids: dict[str, str]) -> None:
    paths.CACHE.mkdir(parents=True, exist_ok=True)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    STAMP.write_text(json.dumps({"at": at, "inputs": inputs_hash(image), "nodes": node_ids}, indent=1) + "\n")


def forget() -> None:
    STAMP.unlink(missing_ok=True)


def readyz(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET URL (https with the lab CA when it exists) -> (status, first bytes of the body)."""
    ca = paths.CA_DIR / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else ssl.create_default_context()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read(200).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(200).decode(errors="replace")
    except (OSError, ssl.SSLError) as exc:
        return 0, str(exc)
