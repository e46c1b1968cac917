"""PUENTE-PG-07 on the lab can fail: a member whose last passed restore drill is older than the policy
allows fails the control on that host only, with the reason; the record put back, it passes again. (The
record is what `puente drill restore` writes.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from lab_audit import audit_control

from puente.lab.inventory import load
from puente.lab.podman import env as podman_env
from puente.shell import run

pytestmark = pytest.mark.lab
RECORD = "/var/lib/pgbackrest/last-restore-drill.json"


def pg07(out: Path, host: str) -> dict[str, dict]:
    """The control's results on ``host`` by aspect."""
    return audit_control("PUENTE-PG-07", host, out)


def put(host: str, text: str) -> None:
    run(["podman", "exec", "-i", host, "sh", "-c", f"cat > {RECORD}; chown postgres:postgres {RECORD}"],
        env=podman_env(), input_text=text)  # fmt: skip


@pytest.mark.parametrize(
    ("record", "reason"),
    # one case (the CI budget): the policy's age limit; a failed drill with none passed since was shown
    # failing the same way on the lab when this test was written
    [({"passed": True, "last_success_at": time.time() - 8 * 86400}, "last passed restore drill is 8.0")],
)
def test_restore_drill_age_fails_then_passes(lab, tmp_path, record: dict, reason: str) -> None:
    host = sorted(n.name for n in load().in_group("postgresql"))[0]
    before = run(["podman", "exec", host, "sh", "-c", f"cat {RECORD} 2>/dev/null || true"],
                 env=podman_env(), capture=True).stdout or ""  # fmt: skip
    try:
        put(host, json.dumps({"finished_at": time.time(), "mode": "time", **record}) + "\n")
        results = pg07(tmp_path / "broken", host)
        assert results["restore-drill-age"]["status"] == "failed", results
        assert reason in (results["restore-drill-age"]["message"] or ""), results["restore-drill-age"]
        assert results["full-backup-age"]["status"] == "passed"
    finally:
        if before.strip().startswith("{"):
            put(host, before.strip().splitlines()[-1] + "\n")
        else:
            run(["podman", "exec", host, "rm", "-f", RECORD], env=podman_env())
    assert pg07(tmp_path / "restored", host)["restore-drill-age"]["status"] == "passed"
