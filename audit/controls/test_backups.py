"""Backups that are checked (role pgbackrest, puente drill restore): the newest full backup, the WAL
archive's lag, and the last restore drill, each against the age the policy allows (audit_policy.py).

Read on every PostgreSQL member: `pgbackrest info` (any member reads the shared repositories), the leader's
archive status (a replica archives nothing), and the drill's record the drill leaves on every member.
"""

from __future__ import annotations

import json

import pytest
from audit_policy import (
    ARCHIVE_MAX_LAG_MINUTES,
    FULL_BACKUP_MAX_AGE_DAYS,
    RESTORE_DRILL_MAX_AGE_DAYS,
    RESTORE_DRILL_RESULT,
)

from puente.audit import control

DAY = 86400


def _info(host) -> dict:
    out = host.snapshot(
        "runuser -u postgres -- pgbackrest --stanza=puente --output=json --log-level-file=off info"
    )
    stanzas = json.loads(out)
    assert stanzas, "pgbackrest info names no stanza"
    return stanzas[0]


def _now(host) -> float:
    return float(host.snapshot("date +%s"))


@control(
    id="PUENTE-PG-07",
    title=(
        f"Full backup < {FULL_BACKUP_MAX_AGE_DAYS} d in every repository, WAL archived within "
        f"{ARCHIVE_MAX_LAG_MINUTES} min, a restore drill passed < {RESTORE_DRILL_MAX_AGE_DAYS} d ago"
    ),
    impact=0.8,
    rationale="""A backup that is old, a WAL archive that stopped, or a restore nobody ran are hopes, not
    backups. The newest full backup bounds how much WAL a restore must replay; the archive's lag bounds what
    losing every database host at once costs; a passed restore drill proves the backups restore with every
    acknowledged write. A cluster whose oldest backup is younger than the drill interval is in its first
    week: the drill is not due yet, unless one ran and failed.""",
    refs={"nist": ["CP-9", "CP-9(1)", "CP-10", "CP-4"]},
    groups=["postgresql"],
    remediation="""`systemctl start pgbackrest-backup@full.service` on the leader; `pgbackrest check` and
    the PostgreSQL log for a stuck archive_command; `puente drill restore` (docs/RESTORE.md).""",
)
@pytest.mark.parametrize("aspect", ["full-backup-age", "wal-archive-lag", "restore-drill-age"])
def test_backups_fresh_archived_and_restored(host, aspect: str):
    now = _now(host)
    if aspect == "full-backup-age":
        stanza = _info(host)
        repos = sorted(str(r["key"]) for r in stanza.get("repo") or [])
        assert repos, "no repository in pgbackrest info"
        for repo in repos:
            stops = [
                b["timestamp"]["stop"]
                for b in stanza.get("backup") or []
                if b.get("type") == "full" and str(b["database"]["repo-key"]) == repo
            ]
            assert stops, f"repo{repo} holds no full backup"
            age = (now - max(stops)) / DAY
            assert age < FULL_BACKUP_MAX_AGE_DAYS, f"repo{repo}: newest full backup is {age:.1f} days old"
    elif aspect == "wal-archive-lag":
        row = host.snapshot(
            'runuser -u postgres -- psql -XAtq -d postgres -c "SELECT pg_is_in_recovery(), '
            "coalesce(extract(epoch FROM min(modification))::text, ''), "
            "(SELECT setting FROM pg_settings WHERE name = 'archive_mode') "
            "FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'\""
        )
        in_recovery, oldest_ready, archive_mode = row.split("|")
        if in_recovery == "t":
            return  # a replica archives nothing: the leader's result is the one that counts
        assert archive_mode == "on", f"archive_mode is {archive_mode} on the leader"
        lag = (now - float(oldest_ready)) / 60 if oldest_ready else 0.0
        assert lag < ARCHIVE_MAX_LAG_MINUTES, f"the oldest WAL segment not yet archived is {lag:.1f} min old"
    else:
        record = json.loads(host.snapshot(f"cat {RESTORE_DRILL_RESULT} 2>/dev/null || echo '{{}}'") or "{}")
        success = record.get("last_success_at")
        if success:
            age = (now - float(success)) / DAY
            assert age < RESTORE_DRILL_MAX_AGE_DAYS, f"the last passed restore drill is {age:.1f} days old"
            return
        assert "finished_at" not in record, "the last restore drill failed and none has passed since"
        stops = [b["timestamp"]["start"] for b in _info(host).get("backup") or []]
        assert stops, "no backup, and no restore drill"
        oldest = (now - min(stops)) / DAY
        assert oldest < RESTORE_DRILL_MAX_AGE_DAYS, (
            f"no restore drill recorded, and backups exist for {oldest:.1f} days"
        )
