"""Roles `pgbackrest` and `lab_s3` on the lab: WAL archiving through Patroni, backups in both repositories
(moto's S3 over TLS on each site), encrypted at rest, checked, metrics for node_exporter, the schedule
acting on the leader only, the old local pg_basebackup job gone, and the repositories' endpoints refusing
nodes the firewall does not name. Idempotence and honest check mode: tests/roles/test_site_idempotence.py
(site.yml imports playbooks/backup.yml).
"""

from __future__ import annotations

import json

import pytest

from puente.lab import inventory

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

STANZA = "puente"
PROM = "/var/lib/prometheus/node-exporter/pgbackrest.prom"
ARCHIVE_COMMAND = f'pgbackrest --stanza={STANZA} archive-push "%p"'
TIMERS = [
    "pgbackrest-full.timer",
    "pgbackrest-diff.timer",
    "pgbackrest-verify.timer",
    "pgbackrest-metrics.timer",
]
LAB = inventory.load()
DB_NODES = [n.name for n in LAB.in_group("postgresql")]
S3_NODES = [n.name for n in LAB.in_group("backup_s3")]
# An object pgBackRest writes into every repository; encrypted (aes-256-cbc), it starts with OpenSSL's salt
# header, in clear with "[backrest]".
BACKUP_INFO = f"/puente-backups/puente/backup/{STANZA}/backup.info"
RAW_GET = r"""
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
req = urllib.request.Request(sys.argv[1], headers={"Authorization":
    "AWS4-HMAC-SHA256 Credential=lab/20240101/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=0"})
sys.stdout.write(urllib.request.urlopen(req, timeout=10, context=ctx).read()[:16].hex())
"""


def as_postgres(host, command: str) -> str:
    return host.check_output(f"runuser -u postgres -- {command}")


def leader(node) -> str:
    for name in DB_NODES:
        if (
            node(name)
            .run(
                'python3 -c "import ssl,urllib.request;urllib.request.urlopen('
                f"'https://{LAB.nodes[name].ip}:8008/primary',timeout=3,context=ssl."
                "create_default_context(cafile='/etc/patroni/ssl/ca.crt'))\""
            )
            .rc
            == 0
        ):
            return name
    raise AssertionError("no member answers 200 on /primary")


def info(node, name: str) -> dict:
    return json.loads(
        as_postgres(node(name), f"pgbackrest --stanza={STANZA} --output=json --log-level-file=off info")
    )[0]


def test_archiving_follows_patroni_on_every_member(node) -> None:
    for name in DB_NODES:
        got = as_postgres(
            node(name),
            'psql -XAtq -d postgres -c "SELECT setting FROM pg_settings WHERE name IN '
            "('archive_mode', 'archive_command', 'archive_timeout') ORDER BY name\"",
        )
        assert got.splitlines() == [ARCHIVE_COMMAND, "on", "60"], f"{name}: {got}"


def test_check_passes_and_every_repository_holds_a_full_backup(node) -> None:
    lead = leader(node)
    # switches a WAL segment and waits until BOTH repositories have it: archiving works end to end
    as_postgres(node(lead), f"pgbackrest --stanza={STANZA} check")
    stanza = info(node, lead)
    assert stanza["status"]["code"] == 0, stanza["status"]
    assert {r["key"]: r["status"]["code"] for r in stanza["repo"]} == {1: 0, 2: 0}
    fulls = {b["database"]["repo-key"] for b in stanza["backup"] if b["type"] == "full"}
    assert fulls == {1, 2}, f"full backups per repository: {fulls}"
    assert stanza["cipher"] == "aes-256-cbc"


@pytest.mark.parametrize("repo", [1, 2])
def test_repositories_are_encrypted_at_rest(node, repo) -> None:
    """Read raw from the S3 endpoint (not through pgBackRest): what someone with the bucket would see."""
    host = node(leader(node))
    endpoint = host.check_output(
        f"grep -Po '(?<=^repo{repo}-s3-endpoint=).*' /etc/pgbackrest/pgbackrest.conf"
    )
    url = f"https://{endpoint}:9000{BACKUP_INFO}"
    head = host.check_output(f"python3 -c '{RAW_GET}' {url} /etc/pgbackrest/repo{repo}-ca.crt")
    assert bytes.fromhex(head).startswith(b"Salted__"), f"{url} is not encrypted: {bytes.fromhex(head)!r}"


@pytest.mark.parametrize("s3", S3_NODES)
def test_only_members_reach_the_repositories(node, s3) -> None:
    outsider = next(n.name for n in LAB.in_group("api_nodes") if n.site.name == LAB.nodes[s3].site.name)
    probe = (
        "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], 9000), timeout=3)' "
        f"{LAB.nodes[s3].ip}"
    )
    assert node(outsider).run(probe).rc != 0, f"{outsider} reaches {s3}:9000"
    assert node(DB_NODES[0]).run(probe).rc == 0, f"{DB_NODES[0]} cannot reach {s3}:9000"


@pytest.mark.parametrize("name", DB_NODES)
def test_timers_metrics_and_no_local_backup_job(node, name) -> None:
    host = node(name)
    for timer in TIMERS:
        assert host.service(timer).is_enabled, f"{timer} on {name}"
    assert not host.file("/etc/systemd/system/postgresql-backup.timer").exists
    assert not host.file("/usr/local/sbin/postgresql-backup").exists
    host.check_output("systemctl start pgbackrest-metrics.service")
    prom = host.file(PROM).content_string
    assert 'pgbackrest_up{stanza="puente"} 1' in prom, prom
    for repo in (1, 2):
        assert f'pgbackrest_backup_last_full_timestamp_seconds{{repo="{repo}",stanza="puente"}}' in prom
        assert f'pgbackrest_backup_last_completion_timestamp_seconds{{repo="{repo}",stanza="puente"}}' in prom
    if name == leader(node):
        assert 'pgbackrest_is_leader{stanza="puente"} 1' in prom
        assert "pgbackrest_wal_last_archived_timestamp_seconds{" in prom


def test_the_schedule_acts_on_the_leader_only(node) -> None:
    lead = leader(node)
    replica = next(n for n in DB_NODES if n != lead)
    out = as_postgres(node(replica), "/usr/local/sbin/pgbackrest-scheduled incr")
    assert "not the leader" in out
