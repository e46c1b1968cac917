"""The API's wheelhouse: nodes have no package index, so the control machine builds the wheels."""

from __future__ import annotations

import hashlib

from puente.lab import paths
from puente.shell import ROOT, run

STAMP = paths.WHEELHOUSE / ".puente-stamp"


def _inputs_hash() -> str:
    digest = hashlib.sha256((ROOT / "constraints.txt").read_bytes())
    api = ROOT / "api"
    for path in sorted(api.rglob("*")):
        rel = path.relative_to(api)
        if path.is_file() and not any(
            p in {"__pycache__", "build"} or p.endswith(".egg-info") for p in rel.parts
        ):
            digest.update(str(rel).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure() -> bool:
    """Build unless constraints.txt and api/ are unchanged since the last build; True when built."""
    want = _inputs_hash()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        print(f"wheelhouse {paths.WHEELHOUSE.relative_to(ROOT)} is up to date", flush=True)
        return False
    paths.WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    run(
        [
            ".venv/bin/pip",
            "wheel",
            "--quiet",
            "-c",
            "constraints.txt",
            "./api",
            "-w",
            str(paths.WHEELHOUSE.relative_to(ROOT)),
        ]
    )
    STAMP.write_text(want + "\n")
    return True
