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

# Object Lock (role lab_s3, as the production bucket): what the bucket says, what pgBackRest's own upload
# got, and what the endpoint does with an upload without Content-MD5 and with a DELETE of a locked version.
# The probe object lives outside pgBackRest's path and is removed with the GOVERNANCE bypass.
LOCK_PROBE = r"""
import base64, hashlib, json, ssl, sys, urllib.error, urllib.request, uuid
base, ca, backup_info = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
auth = "AWS4-HMAC-SHA256 Credential=lab/20240101/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=0"
def call(method, url, body=None, **headers):
    req = urllib.request.Request(url, data=body, method=method, headers={"Authorization": auth, **headers})
    try:
        r = urllib.request.urlopen(req, timeout=10, context=ctx)
    except urllib.error.HTTPError as e:
        r = e
    return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
out = {"lock": call("GET", base + "?object-lock")[2], "backup_info": call("HEAD", base + backup_info)[1]}
probe, body = f"{base}/lab-probe/{uuid.uuid4()}", b"probe"
plain = {"Content-Type": "application/octet-stream"}
md5 = {**plain, "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}
out["put_without_md5"] = call("PUT", probe, body, **plain)[::2]
status, headers, _ = call("PUT", probe, body, **md5)
version = headers.get("x-amz-version-id", "")
out["put_with_md5"] = [status, version]
out["delete_version"] = call("DELETE", f"{probe}?versionId={version}")[::2]
bypass = {"x-amz-bypass-governance-retention": "true"}
out["bypass"] = call("DELETE", f"{probe}?versionId={version}", **bypass)[0]
print(json.dumps(out))
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


@pytest.mark.parametrize("repo", [1, 2])
def test_repositories_are_object_locked_and_pgbackrest_writes_to_them(node, repo) -> None:
    """AWS (and moto) refuse an upload into a bucket with a default retention unless it carries Content-MD5
    or a checksum header: pgBackRest 2.45 sends Content-MD5 (docs/RESTORE.md). Its backup.info there is a
    locked version; a probe without the header is refused; a locked version cannot be deleted."""
    host = node(leader(node))
    endpoint = host.check_output(
        f"grep -Po '(?<=^repo{repo}-s3-endpoint=).*' /etc/pgbackrest/pgbackrest.conf"
    )
    bucket = f"https://{endpoint}:9000/{BACKUP_INFO.split('/')[1]}"
    info_key = BACKUP_INFO.split("/", 2)[2]
    got = json.loads(
        host.check_output(f"python3 -c '{LOCK_PROBE}' {bucket} /etc/pgbackrest/repo{repo}-ca.crt /{info_key}")
    )
    assert "<ObjectLockEnabled>Enabled</ObjectLockEnabled>" in got["lock"], got["lock"]
    assert "<DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days>" in got["lock"], got["lock"]
    # pgBackRest's own upload was accepted under the default retention, and carried Content-MD5 (moto
    # keeps the header with the object)
    assert got["backup_info"].get("content-md5"), got["backup_info"]
    assert got["backup_info"].get("x-amz-object-lock-mode") == "GOVERNANCE", got["backup_info"]
    assert got["backup_info"].get("x-amz-object-lock-retain-until-date"), got["backup_info"]
    status, error = got["put_without_md5"]
    assert status == 400 and "MissingUploadObjectWithObjectLockHeaders" in error, got["put_without_md5"]
    assert got["put_with_md5"][0] == 200 and got["put_with_md5"][1], got["put_with_md5"]
    status, error = got["delete_version"]
    assert status == 403 and "AccessDenied" in error, got["delete_version"]
    assert got["bypass"] == 204


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
