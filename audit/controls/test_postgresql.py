"""PostgreSQL under Patroni (role postgresql): client authentication, TLS, the replication role, backups,
Patroni's REST API.

Queries run as the postgres OS user over the local socket (peer authentication), read-only, on every member
(leader and replicas answer the same catalog views).
"""

from __future__ import annotations

import json

import pytest
from audit_policy import PATRONI_REST_CA, PATRONI_REST_PORT, PGBACKREST_CONF, PGBACKREST_TIMERS

from puente.audit import control

REPLICATION_USER = "replicator"


def sql(host, query: str) -> list[dict]:
    wrapped = f"SELECT coalesce(json_agg(t), '[]') FROM ({query}) t"
    return json.loads(host.snapshot("runuser -u postgres -- psql -XAtq -d postgres -c %s", wrapped))


@control(
    id="PUENTE-PG-01",
    title="pg_hba allows no trust or cleartext-password authentication",
    impact=0.9,
    rationale="""`trust` lets anyone who reaches the port log in as any role; `password` sends it in clear.
    Puente uses peer on the local socket and scram-sha-256 (or certificates) over TLS.""",
    refs={"nist": ["IA-2", "IA-5(1)", "AC-3"]},
    groups=["postgresql"],
)
@pytest.mark.parametrize("method", ["trust", "password", "md5"])
def test_pg_hba_no_weak_method(host, method: str):
    rules = sql(
        host,
        "SELECT line_number, type, database, user_name, address, auth_method, error FROM pg_hba_file_rules",
    )
    assert rules, "pg_hba_file_rules is empty"
    assert not [r for r in rules if r["error"]], "pg_hba.conf has lines PostgreSQL could not parse"
    weak = [r for r in rules if r["auth_method"] == method]
    assert not weak, f"pg_hba lines using {method}: {[r['line_number'] for r in weak]}"


@control(
    id="PUENTE-PG-02",
    title="Network connections to PostgreSQL require TLS 1.2+",
    impact=0.8,
    rationale="""Database credentials and rows cross the site network (and the WAN to the standby); only
    `hostssl` rules may accept them, with TLS on and old protocols off.""",
    refs={"nist": ["SC-8", "SC-8(1)", "SC-13"]},
    groups=["postgresql"],
)
def test_pg_requires_tls(host):
    settings = {
        r["name"]: r["setting"]
        for r in sql(
            host, "SELECT name, setting FROM pg_settings WHERE name IN ('ssl', 'ssl_min_protocol_version')"
        )
    }
    assert settings.get("ssl") == "on", f"ssl = {settings.get('ssl')}"
    assert settings.get("ssl_min_protocol_version") in ("TLSv1.2", "TLSv1.3"), settings
    plain = sql(
        host,
        "SELECT line_number, type, address FROM pg_hba_file_rules "
        "WHERE type IN ('host', 'hostnossl') AND auth_method <> 'reject' "
        "AND NOT (address IN ('127.0.0.1', '::1') OR address IS NULL)",
    )
    assert not plain, f"network rules that accept connections without TLS: {plain}"


@control(
    id="PUENTE-PG-03",
    title="The replication role can replicate and nothing more",
    impact=0.7,
    rationale="""The replication password sits on every member; if it also opened superuser, role creation or
    data access, one leaked file would give away the whole database.""",
    refs={"nist": ["AC-6", "AC-6(1)", "AC-2"]},
    groups=["postgresql"],
)
def test_replication_role_least_privilege(host):
    (role,) = sql(
        host,
        "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
        f"rolcanlogin FROM pg_roles WHERE rolname = '{REPLICATION_USER}'",
    ) or [None]
    assert role is not None, f"no role {REPLICATION_USER}"
    assert role["rolreplication"] and role["rolcanlogin"]
    extra = [k for k in ("rolsuper", "rolcreaterole", "rolcreatedb", "rolbypassrls") if role[k]]
    assert not extra, f"{REPLICATION_USER} also has {extra}"
    granted = sql(
        host,
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        f"JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = '{REPLICATION_USER}'",
    )
    assert not granted, f"{REPLICATION_USER} is a member of {granted}"
    others = sql(
        host,
        "SELECT DISTINCT unnest(user_name) AS u FROM pg_hba_file_rules WHERE 'replication' = ANY(database)",
    )
    assert {o["u"] for o in others} <= {REPLICATION_USER, "postgres"}, (
        f"replication connections allowed for {others}"
    )


@control(
    id="PUENTE-PG-04",
    title="Backups are scheduled into encrypted repositories off the database host",
    impact=0.8,
    rationale="""Replication copies mistakes and deletions at once; only backups and the WAL archive restore
    yesterday's data, and only if they survive the loss of the database hosts and cannot be read by whoever
    reaches the storage. Every pgBackRest repository must be remote (object storage or a repository host)
    and encrypted, the configuration that holds the keys readable by root and postgres only, and the
    backup and verify timers on.""",
    refs={"nist": ["CP-9", "CP-9(8)", "CP-10", "SC-28(1)"]},
    groups=["postgresql"],
)
def test_backups_scheduled_encrypted_off_host(host):
    conf = host.file(PGBACKREST_CONF)
    assert conf.exists, f"no {PGBACKREST_CONF}: role pgbackrest not applied"
    assert conf.mode & 0o007 == 0, f"{PGBACKREST_CONF} is readable by every user (mode {conf.mode:o})"
    # only the option names the control needs: the file also holds the keys and passphrases (no evidence)
    listed = host.check_output(
        "grep -E '^repo[0-9]+-(type|host|path|cipher-type)=' %s || true", PGBACKREST_CONF
    )
    options = dict(line.split("=", 1) for line in listed.splitlines() if "=" in line)
    repos = sorted({k.split("-", 1)[0] for k in options})
    assert repos, "no repository configured"
    for repo in repos:
        kind = options.get(f"{repo}-type", "posix")
        assert kind in ("s3", "gcs", "azure") or f"{repo}-host" in options, (
            f"{repo} is a {kind} repository on this host, not off it"
        )
        assert options.get(f"{repo}-cipher-type") == "aes-256-cbc", f"{repo} is not encrypted"
    for timer in PGBACKREST_TIMERS:
        assert host.service(timer).is_enabled, f"{timer} is not enabled"


@control(
    id="PUENTE-PG-05",
    title="Patroni's REST API refuses unauthenticated changes",
    impact=0.8,
    rationale="""Its write endpoints switch the leader over, restart or reinitialise PostgreSQL and rewrite
    the cluster's configuration. The firewall limits who reaches the port (members and load balancers);
    credentials make sure that reaching it is not enough. Probed with a failover request that names no
    candidate: refused with 401 before anything is read when credentials are required, and rejected as
    incomplete (400) without doing anything when they are not.""",
    refs={"nist": ["AC-3", "IA-2", "CM-5"]},
    groups=["postgresql"],
)
def test_patroni_rest_refuses_unauthenticated_changes(host):
    listening = host.snapshot("ss -Hltn sport = :%s", str(PATRONI_REST_PORT))
    addresses = sorted({line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines() if line.strip()})
    assert addresses, f"nothing listens on port {PATRONI_REST_PORT}"
    for address in addresses:
        target = "127.0.0.1" if address in ("0.0.0.0", "*", "[::]") else address
        code = host.check_output(
            "curl -s -o /dev/null -m 5 -w '%%{http_code}' -X POST -H 'Content-Type: application/json' "
            "-d '{}' --cacert %s https://%s:%s/failover",
            PATRONI_REST_CA,
            target,
            str(PATRONI_REST_PORT),
        )
        assert code == "401", f"POST /failover without credentials on {target}: HTTP {code}, not 401"


@control(
    id="PUENTE-PG-06",
    title="Patroni's REST API is HTTPS only, with a certificate valid for the member",
    impact=0.8,
    rationale="""Its answers decide where the load balancers send writes and reads, and its write endpoints
    carry the `patroni` password. It must speak TLS only, with a certificate the CA signed for the address
    the members, patronictl and the load balancers use (verified here as they verify it: chain, address).""",
    refs={"nist": ["SC-8", "SC-8(1)", "SC-23"]},
    groups=["postgresql"],
)
def test_patroni_rest_is_https_with_a_valid_certificate(host):
    listening = host.snapshot("ss -Hltn sport = :%s", str(PATRONI_REST_PORT))
    addresses = sorted({line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines() if line.strip()})
    assert addresses, f"nothing listens on port {PATRONI_REST_PORT}"
    for address in addresses:
        url = f"{address}:{PATRONI_REST_PORT}/liveness"
        verified = host.run(
            "curl -s -o /dev/null -m 5 -w '%%{http_code}' --cacert %s https://%s", PATRONI_REST_CA, url
        )
        assert verified.stdout == "200", (
            f"https://{url} with the CA: curl exit {verified.rc}, HTTP {verified.stdout or '-'} "
            "(60 = certificate not valid for this address or not signed by the CA)"
        )
        plain = host.run("curl -s -o /dev/null -m 5 -w '%%{http_code}' http://%s", url)
        assert plain.stdout != "200", f"http://{url} answered 200 in plain HTTP"
