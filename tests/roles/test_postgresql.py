"""Role `postgresql`: PostgreSQL 15 under Patroni on the lab's postgresql group.

What the role promises, checked on the running nodes: one leader and a streaming synchronous replica,
replication of a committed row, least-privilege pg_hba (no trust, app user only from its sources),
TLS, a replication role without superuser, idempotence, honest check mode and — marked
destructive — a switchover when the leader's Patroni stops, with the old leader rejoining as a replica.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from puente.lab import inventory
from puente.shell import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

PATRONI_CONFIG = "/etc/patroni/config.yml"
PG_HBA = "/var/lib/postgresql/15/puente/pg_hba.conf"
# postgres_exporter's role (postgresql_monitoring_user): pg_monitor, peer login over the socket.
MONITORING_USER = "prometheus"
REST_PORT = 8008
# Patroni's REST API is HTTPS, its certificate signed by the CA the role installs on each member.
REST_CA = "/etc/patroni/ssl/ca.crt"
APP_DB, APP_USER = "puente", "puente_api"
REPLICATION_USER, SUPERUSER = "replicator", "postgres"

# Speaks just enough of the PostgreSQL protocol (SSLRequest, TLS, StartupMessage) to learn what the
# server's pg_hba decides for (user, database) from the node it runs on, without any password: an
# authentication request (10 = SASL/SCRAM) means a scram-sha-256 line matched; an error means refused.
HBA_PROBE = r"""
import socket, ssl, struct, sys
host, user, db = sys.argv[1:4]
s = socket.create_connection((host, 5432), timeout=5)
s.sendall(struct.pack("!ii", 8, 80877103))
if s.recv(1) != b"S":
    print("no-ssl"); sys.exit(0)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
params = b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
t.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
kind = t.recv(1)
body = t.recv(struct.unpack("!i", t.recv(4))[0] - 4)
if kind == b"R":
    print("auth-request", struct.unpack("!i", body[:4])[0])
else:
    print("error", body.decode(errors="replace").replace("\0", " "))
"""


LAB = inventory.load()


def group(name: str) -> list[str]:
    hosts = LAB.groups.get(name, [])
    assert hosts, f"lab inventory group {name!r} is empty or missing"
    return sorted(hosts)


def address(host: str) -> str:
    return str(LAB.nodes[host].ip)


DB_NODES = group("postgresql")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until predicate() holds; fail naming `what` after `timeout` seconds (a bound, not a target)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s: {what}")
        time.sleep(1)


@pytest.fixture
def psql(node) -> Callable[..., str]:
    def run(host: str, sql: str, db: str = "postgres") -> str:
        return node(host).check_output("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql)

    return run


def rest(node, host: str, path: str) -> tuple[int, str]:
    """GET Patroni's REST API of `host` from the node itself: (HTTP status, body)."""
    url = f"https://{address(host)}:{REST_PORT}{path}"
    cmd = node(host).run("curl -s -w '\\n%%{http_code}' --max-time 3 --cacert %s %s", REST_CA, url)
    body, _, status = cmd.stdout.rpartition("\n")
    return int(status or 0), body


def cluster(node, via: str | None = None) -> dict[str, dict[str, Any]]:
    """Patroni's view of the members, by name (asked to `via`, or to the first member that answers)."""
    for host in [via] if via else DB_NODES:
        status, body = rest(node, host, "/cluster")
        if status == 200:
            return {m["name"]: m for m in json.loads(body)["members"]}
    raise AssertionError("no member's REST API answered /cluster")


def leader(node) -> str:
    leaders = [name for name, m in cluster(node).items() if m["role"] == "leader"]
    assert len(leaders) == 1, f"expected exactly one leader, Patroni reports {leaders}"
    return leaders[0]


def healthy_sync_cluster(node) -> bool:
    members = cluster(node)
    roles = sorted(m["role"] for m in members.values())
    running = all(m["state"] in ("running", "streaming") for m in members.values())
    complete = len(members) == len(DB_NODES)
    return running and complete and roles.count("leader") == 1 and "sync_standby" in roles


# --- converge: bad input ------------------------------------------------------------------------------


# Idempotence and check mode of this tier are proven by tests/roles/test_site_idempotence.py (a second
# site.yml run with changed=0 on every host, and --check --diff with no change): running the tier's
# playbook again here would repeat them at a minute or more of CI time each.


@pytest.mark.parametrize(
    ("extra_vars", "named"),
    [
        ('{"postgresql_patroni_ttl": "ten"}', "postgresql_patroni_ttl"),
        ('{"postgresql_users": [{"password": "x"}]}', "postgresql_users"),
        ('{"etcd_client_port": "2379/tcp"}', "etcd_client_port"),
    ],
    ids=["wrong-type", "missing-required-field", "etcd-wrong-type"],
)
def test_bad_input_stops_before_any_change(run_playbook, extra_vars, named) -> None:
    recap = run_playbook("database.yml", "--extra-vars", extra_vars)
    assert recap.returncode != 0
    assert named in recap.output, recap.output[-3000:]
    assert all(r["changed"] == 0 for r in recap.values()), recap
    assert "PLAY [Distributed configuration store" not in recap.output


# --- cluster shape ---------------------------------------------------------------------------------


def test_one_leader_and_a_streaming_sync_replica(node, psql) -> None:
    wait_for(lambda: healthy_sync_cluster(node), 90, "one leader + a synchronous standby, all running")
    members = cluster(node)
    primary = leader(node)
    query = "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication"
    replication = dict(line.split(" ", 1) for line in psql(primary, query).splitlines())
    assert sorted(replication) == sorted(h for h in DB_NODES if h != primary), replication
    assert all(v.startswith("streaming ") for v in replication.values()), replication
    sync = sorted(name for name, v in replication.items() if v.endswith(" sync"))
    assert len(sync) == 1, f"expected one synchronous standby (synchronous_node_count 1): {replication}"
    # A member tagged nosync (a same-site replica when the cluster spans two sites) is never the sync one.
    assert not members[sync[0]].get("tags", {}).get("nosync"), members[sync[0]]


@pytest.mark.parametrize("host", DB_NODES)
def test_exactly_one_member_answers_primary(node, host) -> None:
    status, _ = rest(node, host, "/primary")
    assert status == (200 if host == leader(node) else 503)


def test_row_written_on_leader_is_read_on_replica(node, psql) -> None:
    primary = leader(node)
    token = uuid.uuid4().hex
    psql(primary, "CREATE TABLE IF NOT EXISTS puente_role_check (token text PRIMARY KEY)")
    try:
        psql(primary, f"INSERT INTO puente_role_check VALUES ('{token}')")
        for replica in (h for h in DB_NODES if h != primary):
            query = f"SELECT count(*) FROM puente_role_check WHERE token = '{token}'"
            wait_for(lambda r=replica, q=query: psql(r, q) == "1", 30, f"row {token} replayed on {replica}")
            assert psql(replica, "SELECT pg_is_in_recovery()") == "t"
    finally:
        psql(primary, "DROP TABLE IF EXISTS puente_role_check")


def test_acknowledged_commit_is_already_visible_on_the_sync_standby(node, psql) -> None:
    """synchronous_commit = remote_apply: the commit returns after the standby replayed it, so a read there
    right after (no waiting) sees it — what the other site's reads rely on during and after a failover."""
    wait_for(lambda: healthy_sync_cluster(node), 90, "one leader + a synchronous standby, all running")
    primary = leader(node)
    assert psql(primary, "SHOW synchronous_commit") == "remote_apply"
    query = "SELECT application_name FROM pg_stat_replication WHERE sync_state = 'sync'"
    standby = psql(primary, query)
    assert standby in DB_NODES, standby
    token = uuid.uuid4().hex
    psql(primary, "CREATE TABLE IF NOT EXISTS puente_apply_check (token text PRIMARY KEY)")
    try:
        psql(primary, f"INSERT INTO puente_apply_check VALUES ('{token}')")
        assert psql(standby, f"SELECT count(*) FROM puente_apply_check WHERE token = '{token}'") == "1"
    finally:
        psql(primary, "DROP TABLE IF EXISTS puente_apply_check")


# --- authentication and TLS ------------------------------------------------------------------------


@pytest.mark.parametrize("host", DB_NODES)
def test_pg_hba_has_no_trust_and_only_scram_over_tls(node, host) -> None:
    rules = [
        line.split()
        for line in node(host).file(PG_HBA).content_string.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules, f"{PG_HBA} on {host} has no rules"
    assert not [r for r in rules if "trust" in r], rules
    for rule in rules:
        if rule[0] == "local":
            # the postgres OS user, and postgres_exporter's role (role exporters) to database postgres only
            ok = rule[2:] == [SUPERUSER, "peer"] or rule[1:] == ["postgres", MONITORING_USER, "peer"]
            assert ok, f"local access beyond the postgres OS user: {rule}"
        elif rule[-1] != "reject":
            assert rule[0] == "hostssl" and rule[-1] == "scram-sha-256", f"non-TLS or non-SCRAM rule: {rule}"
    replication_sources = {r[3] for r in rules if r[1] == "replication" and r[0] != "local"}
    assert replication_sources == {f"{address(h)}/32" for h in DB_NODES}


@pytest.mark.parametrize(
    ("client", "user", "db", "allowed"),
    [
        (group("loadbalancers")[0], APP_USER, APP_DB, True),
        (group("api_nodes")[0], APP_USER, APP_DB, True),
        (group("loadbalancers")[0], APP_USER, "postgres", False),
        (group("loadbalancers")[0], SUPERUSER, "postgres", False),
        (group("loadbalancers")[0], REPLICATION_USER, "replication", False),
        # A member passes the firewall on 5432 but is no application source.
        (DB_NODES[-1], APP_USER, APP_DB, False),
    ],
    ids=lambda v: str(v),
)
def test_pg_hba_decides_by_user_database_and_source(node, client, user, db, allowed) -> None:
    target = address(leader(node))
    answer = node(client).check_output("python3 -c %s %s %s %s", HBA_PROBE, target, user, db)
    if allowed:
        assert answer == "auth-request 10", f"{user}@{db} from {client}: no SCRAM challenge but {answer!r}"
    else:
        assert answer.startswith("error") and "pg_hba.conf rejects connection" in answer, answer


@pytest.mark.parametrize("host", DB_NODES)
def test_ssl_is_on(psql, host) -> None:
    assert psql(host, "SHOW ssl") == "on"


def test_replication_connections_use_tls(node, psql) -> None:
    primary = leader(node)
    ssl = psql(primary, "SELECT bool_and(s.ssl) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
    assert ssl == "t"


def test_roles_are_least_privileged(node, psql) -> None:
    primary = leader(node)
    flags = "rolsuper, rolreplication, rolcreaterole, rolcreatedb, rolbypassrls"
    assert psql(primary, f"SELECT {flags} FROM pg_roles WHERE rolname = '{REPLICATION_USER}'") == "f|t|f|f|f"
    assert psql(primary, f"SELECT {flags} FROM pg_roles WHERE rolname = '{APP_USER}'") == "f|f|f|f|f"
    owner = psql(primary, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{APP_DB}'")
    assert owner == APP_USER
    query = f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{APP_USER}'"
    assert psql(primary, query) == "t"


# --- files, services, ports ------------------------------------------------------------------------


@pytest.mark.parametrize("host", DB_NODES)
def test_patroni_config_is_private_and_service_enabled(node, host) -> None:
    config = node(host).file(PATRONI_CONFIG)
    assert (config.user, config.group, config.mode) == ("postgres", "postgres", 0o600)
    assert node(host).service("patroni").is_enabled
    assert node(host).service("patroni").is_running
    assert node(host).file("/etc/patroni/ssl/server.key").mode == 0o600


@pytest.mark.parametrize("host", DB_NODES)
def test_patroni_rest_writes_need_credentials(node, host) -> None:
    """A write endpoint without credentials is refused before anything is read (a failover request that
    names no candidate would otherwise be answered 400, doing nothing); GET health checks stay open."""
    url = f"https://{address(host)}:{REST_PORT}/failover"
    code = node(host).check_output(
        "curl -s -o /dev/null -m 5 -w '%%{http_code}' --cacert %s -X POST "
        "-H 'Content-Type: application/json' -d '{}' %s",
        REST_CA,
        url,
    )
    assert code == "401", f"POST /failover without credentials: HTTP {code}"
    assert rest(node, host, "/health")[0] == 200


@pytest.mark.parametrize("host", DB_NODES)
def test_patroni_rest_is_https_only_with_a_certificate_for_the_member(node, host) -> None:
    """rest() verifies the certificate against the CA and the member's address; plain HTTP gets no answer."""
    assert rest(node, host, "/liveness")[0] == 200
    plain = node(host).run(
        "curl -s -o /dev/null -m 3 -w '%%{http_code}' http://%s:%s/liveness", address(host), str(REST_PORT)
    )
    assert plain.stdout != "200", plain.stdout


PATRONI_DIR = "/usr/lib/python3/dist-packages/patroni"
CARRIED_FIXES = yaml.safe_load((ROOT / "roles/postgresql/vars/main.yml").read_text())[
    "__postgresql_patroni_fixes"
]


@pytest.mark.parametrize("host", DB_NODES)
@pytest.mark.parametrize("fix", CARRIED_FIXES, ids=lambda f: f["module"])
def test_patroni_runs_with_the_upstream_fixes_the_role_carries(node, host, fix) -> None:
    """Debian's Patroni 3.0.2 could overwrite another member's leader key after a partition (398
    acknowledged writes lost in `puente drill partition`), could demote a cut-off leader twice at once
    (two PostgreSQL starts racing), and left an old leader rewound against an idle leader `starting`
    until a client wrote: the role carries the fixes. On the node, each module holds the fixed text and
    not the 3.0.2 one, and Patroni was restarted after."""
    module = f"{PATRONI_DIR}/{fix['module']}"
    code = node(host).file(module).content_string
    assert fix["bug"] not in code, f"{host}: {module} still has the 3.0.2 code ({fix['name']})"
    assert fix["fix"] in code, f"{host}: {module} runs without the fix {fix['name']}"
    started = node(host).check_output("systemctl show -p ActiveEnterTimestampMonotonic --value patroni")
    changed = node(host).check_output(
        "python3 -c 'import os, sys, time; print(int((os.path.getmtime(sys.argv[1]) - time.time() "
        "+ time.monotonic()) * 1e6))' %s",
        module,
    )
    assert int(started) > int(changed), f"patroni was not restarted after {module} changed"


@pytest.mark.parametrize("host", DB_NODES)
@pytest.mark.parametrize("port", [5432, REST_PORT])
def test_listens_only_on_the_site_address(node, host, port) -> None:
    assert node(host).socket(f"tcp://{address(host)}:{port}").is_listening
    assert not node(host).socket(f"tcp://0.0.0.0:{port}").is_listening


def test_no_debian_default_cluster(node) -> None:
    for host in DB_NODES:
        assert not node(host).file("/var/lib/postgresql/15/main").exists
        assert (
            "create_main_cluster = false"
            in node(host).file("/etc/postgresql-common/createcluster.conf").content_string
        )


# Backups: role pgbackrest (tests/roles/test_pgbackrest.py).


# --- failover (destructive) ------------------------------------------------------------------------


@pytest.mark.destructive
def test_leader_stop_switches_over_and_old_leader_rejoins(node, psql) -> None:
    wait_for(lambda: healthy_sync_cluster(node), 90, "healthy cluster before the switchover")
    old = leader(node)
    # Synchronous mode: only the synchronous standby may be promoted.
    survivor = next(name for name, m in cluster(node).items() if m["role"] == "sync_standby")
    token = uuid.uuid4().hex
    psql(old, "CREATE TABLE IF NOT EXISTS puente_role_check (token text PRIMARY KEY)")
    psql(old, f"INSERT INTO puente_role_check VALUES ('{token}')")
    node(old).run_expect([0], "systemctl stop patroni")
    try:
        wait_for(lambda: rest(node, survivor, "/primary")[0] == 200, 60, f"{survivor} promoted")
        # Acknowledged under synchronous replication: the new leader must have it.
        assert psql(survivor, f"SELECT count(*) FROM puente_role_check WHERE token = '{token}'") == "1"
        assert psql(survivor, "SELECT pg_is_in_recovery()") == "f"
    finally:
        node(old).run_expect([0], "systemctl start patroni")
    wait_for(
        lambda: (
            cluster(node, survivor).get(old, {}).get("role") in ("replica", "sync_standby")
            and cluster(node, survivor)[old]["state"] in ("running", "streaming")
        ),
        120,
        f"{old} back as a replica",
    )
    wait_for(lambda: healthy_sync_cluster(node), 120, "synchronous standby restored")
    assert leader(node) == survivor
    assert rest(node, old, "/primary")[0] == 503
    psql(survivor, "DROP TABLE IF EXISTS puente_role_check")
    # Restore the state found: the old leader leads again (on two sites, that keeps the primary site primary).
    # patronictl, as an operator would: it authenticates with the REST credentials of the node's config.
    # Patroni 3.0.2 may drop the connection as the leader demotes: the cluster's state says if it happened.
    switch = node(old).run(
        "patronictl -c %s switchover --leader %s --candidate %s --force", PATRONI_CONFIG, survivor, old
    )
    wait_for(
        lambda: rest(node, old, "/primary")[0] == 200,
        60,
        f"{old} leads again (patronictl exit {switch.rc}: {switch.stdout}{switch.stderr})",
    )
    wait_for(lambda: healthy_sync_cluster(node), 120, "synchronous standby restored after the switch back")
