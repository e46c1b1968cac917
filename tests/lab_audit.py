"""One control of ``puente audit`` on one lab host, for the tests that need a control's verdict on the lab
(tests/audit, and the restore drill's test: the audit reads what the drill recorded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def audit_control(control_id: str, host: str, out: Path) -> dict[str, dict]:
    """``puente audit -k CONTROL --limit HOST`` over podman into ``out``: the results by parameter."""
    argv = [sys.executable, "-m", "puente.cli", "audit", "-i", "inventories/lab", "--out", str(out),
            "--connection", "podman", "--limit", host, "-k", control_id,
            "--vault-password-file", "inventories/lab/vault-password.lab-only"]  # fmt: skip
    subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    doc = json.loads((out / "report.json").read_text())
    return {r["params"]: r for r in doc["results"] if r["control_id"] == control_id and r["host"] == host}
