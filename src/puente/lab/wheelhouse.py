"""Wheelhouses: nodes have no package index, so the control machine builds the wheels.

`.cache/wheelhouse` holds the API (role `api`); `.cache/wheelhouse-moto` holds moto's server, the lab's
SQS stand-in (role `moto_sqs`, only when the inventory has an `sqs` node). Each is rebuilt only when its
inputs (constraints.txt, and api/ for the API) changed since the last build (stamp file inside)."""

from __future__ import annotations

import hashlib

from puente.lab import paths
from puente.shell import ROOT, run

STAMP = paths.WHEELHOUSE / ".puente-stamp"
MOTO_WHEELHOUSE = paths.WHEELHOUSE.with_name("wheelhouse-moto")
MOTO_REQUIREMENT = "moto[server]"


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


def ensure_moto() -> bool:
    """Build moto's server wheels unless constraints.txt is unchanged since the last build."""
    stamp = MOTO_WHEELHOUSE / ".puente-stamp"
    inputs = (ROOT / "constraints.txt").read_bytes() + MOTO_REQUIREMENT.encode()
    want = hashlib.sha256(inputs).hexdigest()[:16]
    if stamp.exists() and stamp.read_text().strip() == want:
        print(f"wheelhouse {MOTO_WHEELHOUSE.relative_to(ROOT)} is up to date", flush=True)
        return False
    MOTO_WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    run(
        [
            ".venv/bin/pip",
            "wheel",
            "--quiet",
            "-c",
            "constraints.txt",
            MOTO_REQUIREMENT,
            "-w",
            str(MOTO_WHEELHOUSE.relative_to(ROOT)),
        ]
    )
    stamp.write_text(want + "\n")
    return True
