"""Role `haproxy`: the on-prem site's load balancer on the lab's loadbalancers group.

What the role promises: HAProxy running with a valid configuration; the API frontend on loopback (for
the gateway), stats on loopback only, the PostgreSQL frontend on the node's address; every API node
up in the `api` backend; exactly one PostgreSQL server up, and it is Patroni's leader; the runtime socket
(admin level, root and haproxy only) drains a server so it gets no new requests; a reload keeps a
drained server drained; a connection to the PostgreSQL frontend from outside the API nodes is dropped;
the read frontend of each site sends sessions to that site's own leader or synchronous standby.
"""

from __future__ import annotations

import json
import shlex
import socket
import time
from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

EDGE = "onprem-edge1"
EDGE_IP = "10.89.1.10"
# Patroni's REST API is HTTPS; the edge checks it against this CA (roles/haproxy).
PATRONI_CA = "/etc/haproxy/patroni-ca.crt"
SOCKET = "/run/haproxy/admin.sock"
API_SERVERS = ["onprem-api1", "onprem-api2"]
DB_SERVERS = {"onprem-db1": "10.89.1.31", "onprem-db2": "10.89.1.32", "cloud-db1": "10.89.2.31"}


def runtime(node: Callable, command: str, edge: str = EDGE) -> str:
    return node(edge).check_output(f"echo '{command}' | socat stdio unix-connect:{SOCKET}")


def servers_state(node: Callable, backend: str) -> dict[str, dict[str, int]]:
    """`show servers state`: {server: {"op": srv_op_state, "admin": srv_admin_state}}."""
    for _ in range(10):  # right after a reload the new worker may not answer on the socket yet
        rows = [line.split() for line in runtime(node, f"show servers state {backend}").splitlines()[2:]]
        state = {r[3]: {"op": int(r[5]), "admin": int(r[6])} for r in rows if len(r) > 6}
        if state:
            return state
        time.sleep(0.5)
    raise AssertionError(f"no servers in `show servers state {backend}`")


def total_sessions(node: Callable, backend: str, edge: str = EDGE) -> dict[str, int]:
    """`show stat` CSV: stot (sessions since start) per server."""
    lines = runtime(node, "show stat -1 4 -1", edge).splitlines()
    header = lines[0].lstrip("# ").split(",")
    col = header.index("stot")
    rows = (line.split(",") for line in lines[1:] if line.startswith(f"{backend},"))
    return {f[1]: int(f[col]) for f in rows}


def test_running_with_a_valid_configuration(node: Callable) -> None:
    edge = node(EDGE)
    assert edge.service("haproxy").is_running and edge.service("haproxy").is_enabled
    assert edge.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0


def test_listeners_only_where_intended(node: Callable) -> None:
    # HAProxy's listeners (handed from master to worker) show no owning process in `ss`: compare the
    # node's whole set of IPv4 listeners instead; sshd, nginx (its stub_status on loopback too) and the
    # exporters (node, nginx: role exporters) are the only others on the edge.
    out = node(EDGE).check_output("ss -Hltn4")
    addrs = {line.split()[3] for line in out.splitlines()}
    others = {"0.0.0.0:22", "0.0.0.0:80", "0.0.0.0:443", "127.0.0.1:8090"}
    others |= {f"{EDGE_IP}:9100", f"{EDGE_IP}:9113"}
    haproxy = addrs - others
    # 8405: the built-in Prometheus exporter (/metrics only), firewalled to the monitoring hosts
    expected = {"127.0.0.1:8080", "127.0.0.1:8404", f"{EDGE_IP}:5432", f"{EDGE_IP}:5433", f"{EDGE_IP}:8405"}
    assert haproxy == expected, out


def test_admin_socket_root_and_haproxy_only(node: Callable) -> None:
    sock = node(EDGE).file(SOCKET)
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("root", "haproxy", 0o660)
    assert "Name: HAProxy" in runtime(node, "show info")


def test_every_api_node_up(node: Callable) -> None:
    state = servers_state(node, "api")
    # the site's API nodes (more after `puente lab scale`), and no other site's
    assert set(API_SERVERS) <= set(state) and all(s.startswith("onprem-api") for s in state), state
    assert {s: v["op"] for s, v in state.items()} == dict.fromkeys(state, 2), state


def test_postgresql_frontend_routes_to_the_patroni_leader_only(node: Callable) -> None:
    state = servers_state(node, "postgresql")
    up = [s for s, v in state.items() if v["op"] == 2]
    assert len(up) == 1, state
    leader_ip = DB_SERVERS[up[0]]
    code = node(EDGE).check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' --cacert {PATRONI_CA} https://{leader_ip}:8008/primary"
    )
    assert code == "200"


@pytest.mark.parametrize(
    ("edge", "edge_ip", "client", "site"),
    [(EDGE, EDGE_IP, "onprem-api1", "onprem"), ("cloud-edge1", "10.89.2.10", "cloud-api1", "cloud")],
)
def test_read_frontend_sends_sessions_to_the_sites_own_leader_or_synchronous_standby(
    node: Callable, edge: str, edge_ip: str, client: str, site: str
) -> None:
    """Reads stay on the site: its own member that holds every acknowledged commit (the Patroni leader,
    or the synchronous standby), never the other site's, never the asynchronous (`nosync`) replica."""
    patroni = DB_SERVERS[f"{site}-db1"]
    members = json.loads(
        node(edge).check_output(f"curl -s --cacert {PATRONI_CA} https://{patroni}:8008/cluster")
    )["members"]
    roles = {m["name"]: m["role"] for m in members}
    own = [n for n, r in roles.items() if n.startswith(f"{site}-") and r in ("leader", "sync_standby")]
    assert len(own) == 1, roles
    before = total_sessions(node, "postgresql_read", edge)
    probe = f"python3 -c 'import socket; socket.create_connection((\"{edge_ip}\", 5433), timeout=3).close()'"
    for _ in range(3):
        node(client).check_output(probe)
    time.sleep(0.5)  # stot counts a session once it ended
    after = total_sessions(node, "postgresql_read", edge)
    grew = {s for s in after if after[s] > before.get(s, 0)}
    assert grew == set(own), (before, after, roles)


def test_postgresql_frontend_reachable_from_api_nodes_only(node: Callable) -> None:
    probe = f"python3 -c 'import socket; socket.create_connection((\"{EDGE_IP}\", 5432), timeout=3)'"
    assert node("onprem-api1").run(probe).rc == 0
    with pytest.raises(OSError), socket.create_connection((EDGE_IP, 5432), timeout=2):
        pass


def test_stats_not_reachable_from_outside() -> None:
    with pytest.raises(OSError), socket.create_connection((EDGE_IP, 8404), timeout=2):
        pass


@pytest.fixture
def drained_api1(node: Callable):
    runtime(node, "set server api/onprem-api1 state drain")
    yield
    runtime(node, "set server api/onprem-api1 state ready")
    for _ in range(30):
        if servers_state(node, "api")["onprem-api1"]["op"] == 2:
            return
        time.sleep(1)


def test_drained_server_gets_no_new_requests_and_stays_drained_after_a_reload(
    node: Callable, drained_api1: None
) -> None:
    edge = node(EDGE)
    edge.check_output("systemctl reload haproxy")
    assert servers_state(node, "api")["onprem-api1"]["admin"] & 0x08, "drain lost in the reload"
    before = total_sessions(node, "api")
    for _ in range(10):
        edge.check_output("curl -s -o /dev/null -m 5 http://127.0.0.1:8080/healthz")
    after = total_sessions(node, "api")
    assert after["onprem-api1"] == before["onprem-api1"]
    assert after["onprem-api2"] >= before["onprem-api2"] + 10


# Holds a transaction-level advisory lock through the API's own database path (its URL and password, as
# its user), as a request holding an idempotency key does, then sits idle in the transaction.
HOLDER = """
import os, time, psycopg
conn = psycopg.connect(os.environ["PUENTE_DATABASE_URL"], password=os.environ["PUENTE_DATABASE_PASSWORD"])
conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
time.sleep(300)
"""
VANISH = "puente_test_vanish"


# Runs on the leader: waits until no session holds the lock and prints when (the nodes share this
# machine's clock), so the figure does not include the latency of asking from here.
RELEASE_WAITER = """
import subprocess, sys, time
deadline = time.time() + 40
while time.time() < deadline:
    held = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-XAtc", sys.argv[1]],
                          capture_output=True, text=True, check=True).stdout.strip()
    if held == "0":
        break
    time.sleep(0.05)
print(time.time())
"""


def lock_query(lock: int) -> str:
    return f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {lock} AND granted"


def leader(node: Callable) -> Callable:
    state = servers_state(node, "postgresql")
    return node(next(s for s, v in state.items() if v["op"] == 2))


@pytest.mark.destructive
def test_a_vanished_api_nodes_session_and_its_locks_end_within_5_s(node: Callable) -> None:
    """An API node that vanishes mid-request (no FIN: here its network drops every packet) loses its
    database sessions within 5 s, so a key it held is free for the retry on another node, instead of
    after the 30 s idle-in-transaction timeout (HAProxy's TCP proxy would keep the session open)."""
    lock = 4_200_000 + int(time.time()) % 100_000  # not one an earlier run could have left
    api, unit = node("onprem-api1"), f"puente-test-holder-{lock}"
    env = " ".join(f"-p EnvironmentFile={f}" for f in ("/etc/puente/api.env", "/etc/puente/api-secrets.env"))
    script = HOLDER.replace("LOCK", str(lock))
    api.check_output(
        f"systemd-run --unit={unit} --uid=puente-api --gid=puente-api {env} "
        f"/opt/puente-api/current/venv/bin/python -c '{script}'"
    )
    try:
        db, query = leader(node), shlex.quote(lock_query(lock))
        for _ in range(40):
            if db.check_output(f"runuser -u postgres -- psql -XAtc {query}") == "1":
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the holder never took its lock: {api.run(f'journalctl -u {unit}').stdout}")
        api.check_output(
            f"nft add table inet {VANISH}"
            f" && nft add chain inet {VANISH} in '{{ type filter hook input priority -300; policy drop; }}'"
            f" && nft add chain inet {VANISH} out '{{ type filter hook output priority -300; policy drop; }}'"
        )
        cut = time.time()
        released = float(db.check_output(f"python3 -c {shlex.quote(RELEASE_WAITER)} {query}")) - cut
        print(f"lock released {released:.1f} s after the node vanished")
        assert released <= 5.0, f"the vanished node's lock was held {released:.1f} s after it vanished"
    finally:
        api.run(f"nft delete table inet {VANISH}")
        api.run(f"systemctl stop {unit}")
        for _ in range(30):  # back in the API backend before the next test
            if servers_state(node, "api")["onprem-api1"]["op"] == 2:
                break
            time.sleep(1)


@pytest.mark.parametrize(("edge", "edge_ip"), [(EDGE, EDGE_IP), ("cloud-edge1", "10.89.2.10")])
@pytest.mark.parametrize("port", [5432, 5433])
def test_a_member_behind_the_balancer_passes_verify_full_for_the_balancers_address(
    node: Callable, edge: str, edge_ip: str, port: int
) -> None:
    """HAProxy passes PostgreSQL's TLS through (TCP): whichever member answers, its certificate is valid for
    the load balancer's address the API connects to (libpq's sslmode=verify-full), and for no other."""
    probe = (
        "echo | timeout 5 openssl s_client -starttls postgres -connect {ip}:{port} -verify_ip {name} "
        f"-CAfile {PATRONI_CA} -verify_return_error 2>&1"
    )
    good = node(edge).run(probe.format(ip=edge_ip, port=port, name=edge_ip))
    assert "Verify return code: 0 (ok)" in good.stdout, good.stdout[-500:]
    bad = node(edge).run(probe.format(ip=edge_ip, port=port, name="192.0.2.1"))
    assert "IP address mismatch" in bad.stdout, bad.stdout[-500:]
