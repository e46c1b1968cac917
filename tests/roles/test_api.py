"""Role `api`: Puente's reference API on the lab's api_nodes.

What the role promises, checked on the running nodes: the API, relay and worker run under systemd as the
unprivileged system user, with the hardening the units declare actually in force where the kernel
allows it; secrets in a root-only file; the code in an immutable release owned by root behind the
`current` symlink; the API listening on the node's service address only, reachable from the load
balancer and not from elsewhere; the reaper on a timer; /readyz answering 200.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

API_NODES = {"onprem-api1": "10.89.1.21", "onprem-api2": "10.89.1.22"}
EDGE = "onprem-edge1"
PORT = 8080
USER = "puente-api"
SERVICES = ["puente-api", "puente-api-relay", "puente-api-worker"]
# Declared in every unit of the role (systemctl show names and values).
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "UMask": "0077",
    "User": USER,
}

nodes = pytest.mark.parametrize("name", sorted(API_NODES))


def _main_pid(host, unit: str) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {unit}"))


def _journal_on_failure(host, unit: str) -> str:
    return host.run(f"journalctl -u {unit} -n 30 --no-pager").stdout


@nodes
@pytest.mark.parametrize("unit", SERVICES)
def test_service_running_as_the_api_user(node: Callable, name: str, unit: str) -> None:
    host = node(name)
    svc = host.service(unit)
    assert svc.is_running and svc.is_enabled, _journal_on_failure(host, unit)
    pid = _main_pid(host, unit)
    # every process of the unit (uvicorn's workers too) runs as the API's user
    users = host.check_output(f"ps -o user= --ppid {pid} -p {pid}").split()
    assert users and set(users) == {USER}, users


@nodes
@pytest.mark.parametrize("unit", SERVICES)
def test_unit_declares_the_hardening(node: Callable, name: str, unit: str) -> None:
    props = ",".join(HARDENING)
    out = node(name).check_output(f"systemctl show -p {props} {unit}")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got == HARDENING


@nodes
def test_hardening_in_force_on_the_api_process(node: Callable, name: str) -> None:
    host = node(name)
    status = host.file(f"/proc/{_main_pid(host, 'puente-api')}/status").content_string
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # filter mode: SystemCallFilter is loaded
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapBnd"], 16) == 0


@nodes
def test_code_is_read_only_for_the_api(node: Callable, name: str) -> None:
    host = node(name)
    current = host.file("/opt/puente-api/current")
    assert current.is_symlink
    release = host.file(current.linked_to)
    assert release.user == "root" and release.mode & 0o022 == 0
    assert host.file(f"{current.linked_to}/.complete").exists
    # the API's user cannot write to its code or its settings
    probe = host.run(f"runuser -u {USER} -- touch {current.linked_to}/venv/probe /etc/puente/probe")
    assert probe.rc != 0


@nodes
def test_secrets_root_only_and_runtime_settings_without_secrets(node: Callable, name: str) -> None:
    host = node(name)
    secrets = host.file("/etc/puente/api-secrets.env")
    assert (secrets.user, secrets.group, secrets.mode) == ("root", "root", 0o600)
    assert secrets.contains("^PUENTE_DATABASE_PASSWORD=.")
    assert secrets.contains("^PUENTE_BROKER_PASSWORD=.")
    runtime = host.file("/etc/puente/api.env")
    assert runtime.mode == 0o644
    settings = dict(line.split("=", 1) for line in runtime.content_string.splitlines() if "=" in line)
    # through this site's load balancer, the member's certificate verified against its address
    tls = "?sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt"
    assert settings["PUENTE_DATABASE_URL"] == f"postgresql://puente_api@10.89.1.10:5432/puente{tls}"
    assert settings["PUENTE_DATABASE_READ_URL"] == f"postgresql://puente_api@10.89.1.10:5433/puente{tls}"
    assert not runtime.contains("PASSWORD")


@nodes
def test_api_listens_on_the_service_address_only(node: Callable, name: str) -> None:
    host = node(name)
    listening = [s for s in host.check_output("ss -Hltn").splitlines() if s.split()[3].endswith(f":{PORT}")]
    assert [s.split()[3] for s in listening] == [f"{API_NODES[name]}:{PORT}"], listening


@nodes
def test_ready_through_the_load_balancers_network(node: Callable, name: str) -> None:
    url = f"http://{API_NODES[name]}:{PORT}/readyz"
    out = node(EDGE).run(f"curl -s -m 5 -w '\\n%{{http_code}}' {url}")
    body, _, code = out.stdout.rpartition("\n")
    assert code == "200", body
    assert json.loads(body)


@nodes
def test_api_port_closed_to_other_sources(name: str) -> None:
    # From the machine hosting the lab (not a load balancer): the node's firewall drops the connection.
    with pytest.raises(OSError), socket.create_connection((API_NODES[name], PORT), timeout=2):
        pass


@nodes
def test_reaper_timer_scheduled(node: Callable, name: str) -> None:
    host = node(name)
    assert host.service("puente-api-reaper.timer").is_running
    assert host.service("puente-api-reaper.timer").is_enabled
    # the one-shot service itself is only started by the timer
    assert host.check_output("systemctl show -p User --value puente-api-reaper.service") == USER


# --- metrics of the relay and the worker, the backlog gauges, a dead-lettered label (issue 12) ----------
METRICS_PORTS = {"puente-api-relay": 9471, "puente-api-worker": 9472}  # roles/api defaults
MONITORING_HOST = "onprem-dns1"  # group `monitoring` (inventories/lab/hosts.yml): a Prometheus server
PROMETHEUS = "http://10.89.1.53:9090"  # its Prometheus, on the node's address (role monitoring)
OTHER_HOST = "onprem-db1"  # in no monitoring network
# A command run on an API node as the API's processes run: its user, its environment files.
AS_THE_API = (
    "systemd-run --quiet --wait --pipe --collect --uid=puente-api --gid=puente-api"
    " --property=EnvironmentFile=/etc/puente/api.env --property=EnvironmentFile=/etc/puente/api-secrets.env "
)
VENV = "/opt/puente-api/current/venv/bin"


def _scrape(host, url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = host.check_output(f"curl -sf -m 5 {url}")
    return {
        s.name
        + (
            "{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}" if s.labels else ""
        ): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@nodes
def test_metrics_listeners_on_the_service_address_only(node: Callable, name: str) -> None:
    listening = {s.split()[3] for s in node(name).check_output("ss -Hltn").splitlines()}
    for port in METRICS_PORTS.values():
        assert {a for a in listening if a.endswith(f":{port}")} == {f"{API_NODES[name]}:{port}"}, listening


@nodes
def test_relay_and_worker_serve_their_counters(node: Callable, name: str) -> None:
    host = node(name)
    relay = _scrape(host, f"http://{API_NODES[name]}:{METRICS_PORTS['puente-api-relay']}/metrics")
    worker = _scrape(host, f"http://{API_NODES[name]}:{METRICS_PORTS['puente-api-worker']}/metrics")
    assert "puente_relay_published_total" in relay
    assert {'puente_worker_messages_total{outcome="applied"}', "puente_worker_dead_letters"} <= set(worker)


@pytest.mark.parametrize("port", sorted(METRICS_PORTS.values()))
def test_metrics_ports_closed_to_other_sources(port: int) -> None:
    # From the machine hosting the lab (no monitoring host): the node's firewall drops the connection.
    with pytest.raises(OSError), socket.create_connection((API_NODES["onprem-api1"], port), timeout=2):
        pass


# Run on onprem-api1 with the release's Python, as the API's user with its settings: a shipment whose label
# cannot be rendered (the database takes parcels the API would refuse), written as the API writes it (with
# its outbox row); a running relay (either site's: both claim outbox rows) and that site's worker
# dead-letter it; the API says `failed` and why; the data is fixed. Prints one JSON object.
BREAK_A_LABEL = r"""
import json, sys, time, urllib.request, uuid
from psycopg.types.json import Jsonb
from puente_api import apikeys, db, settings

base = sys.argv[1]
client = "labtest-" + uuid.uuid4().hex[:8]
addr = {"name": "Ada", "street": "1 Main St", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}
good = [{"weight_grams": 800, "length_cm": 20, "width_cm": 10, "height_cm": 5}]
out = {}
with db.connect(settings.load()) as conn:
    key = apikeys.create(conn, client, "lab test: dead-lettered label")
    sid = uuid.uuid4()
    started = time.monotonic()
    with conn.transaction():
        conn.execute(
            "INSERT INTO shipments (id, client_id, service, sender, recipient, parcels)"
            " VALUES (%s, %s, 'standard', %s, %s, %s)",
            (sid, client, Jsonb(addr), Jsonb(addr), Jsonb([{"weight_grams": "heavy"}])),
        )
        conn.execute(
            "INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('shipment.created', %s, %s)",
            (sid, Jsonb({"shipment_id": str(sid)})),
        )
    sql = "SELECT label_status FROM shipments WHERE id = %s"
    while conn.execute(sql, (sid,)).fetchone()[0] != "failed" and time.monotonic() - started < 30:
        time.sleep(0.1)
    out["failed_after_s"] = round(time.monotonic() - started, 2)
    auth = {"Authorization": f"Bearer {key.token}"}
    request = urllib.request.Request(f"{base}/v1/shipments/{sid}", headers=auth)
    out["api"] = json.load(urllib.request.urlopen(request, timeout=5))
    conn.execute("UPDATE shipments SET parcels = %s WHERE id = %s", (Jsonb(good), sid))
out |= {"sid": str(sid), "token": key.token, "key_id": key.key_id}
print(json.dumps(out))
"""

# The same, after the redrive: waits until the label is made, reads the shipment through the API, revokes
# the test's key.
AFTER_THE_REDRIVE = r"""
import json, sys, time, urllib.request
from puente_api import db, settings

base, sid, token, key_id = sys.argv[1:5]
out = {}
with db.connect(settings.load()) as conn:
    started = time.monotonic()
    sql = "SELECT label_status FROM shipments WHERE id = %s"
    while conn.execute(sql, (sid,)).fetchone()[0] != "ready" and time.monotonic() - started < 30:
        time.sleep(0.1)
    out["ready_after_s"] = round(time.monotonic() - started, 2)
    auth = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{base}/v1/shipments/{sid}", headers=auth)
    out["api"] = json.load(urllib.request.urlopen(request, timeout=5))
    conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = %s", (key_id,))
print(json.dumps(out))
"""


def _as_the_api(host, argv: str) -> str:
    run = host.run(f"{AS_THE_API} {argv}")
    assert run.rc in (0, 1), run.stderr[-3000:]  # labels redrive: 1 when unreadable dead letters were left
    return run.stdout


def _python(host, script: str, *args: str) -> dict:
    quoted = script.replace("'", "'\"'\"'")
    return json.loads(
        _as_the_api(host, f"{VENV}/python -c '{quoted}' {' '.join(args)}").strip().splitlines()[-1]
    )


def _dead_letter_alert_firing(prometheus) -> bool:
    alerts = json.loads(prometheus.check_output(f"curl -sf -m 3 {PROMETHEUS}/api/v1/alerts"))["data"][
        "alerts"
    ]
    return any(a["labels"]["alertname"] == "PuenteDeadLetters" and a["state"] == "firing" for a in alerts)


def _wait_for_dead_letter_alert(prometheus, seconds: float = 150) -> float:
    """Seconds until the site's Prometheus (role monitoring) fires PuenteDeadLetters, which reads the
    workers' puente_worker_dead_letters (their look every 10 s, a scrape, then the rule's `for`)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if _dead_letter_alert_firing(prometheus):
            return round(time.monotonic() - started, 1)
        time.sleep(2)
    raise AssertionError(f"PuenteDeadLetters did not fire within {seconds} s")


def test_a_dead_lettered_label_reads_failed_and_the_redrive_makes_it(node: Callable) -> None:
    """Issue 12's acceptance, on the lab's PostgreSQL (Patroni, through HAProxy), RabbitMQ (AMQPS) and SQS
    (moto): the shipment reads failed with its reason, the dead-letter alert fires, the redrive makes the
    label. Each site's relay may publish the label message to its own broker, so the documented redrive
    runs on an API node of each site, and exactly one of them finds it."""
    host = node("onprem-api1")
    base = f"http://{API_NODES['onprem-api1']}:{PORT}"
    assert not _dead_letter_alert_firing(node(MONITORING_HOST)), "dead letters before the test: redrive them"
    broken = _python(host, BREAK_A_LABEL, base)
    failed = broken["api"]
    assert failed["label_status"] == "failed", broken
    assert (
        "cannot be rendered" in failed["label_failure_reason"] and "heavy" in failed["label_failure_reason"]
    )
    assert failed["label"] is None
    try:
        fired_after = _wait_for_dead_letter_alert(node(MONITORING_HOST))
    finally:  # the data is fixed already: whatever happened, the label is made and no dead letter left
        outputs = {
            n: _as_the_api(node(n), f"{VENV}/puente-api labels redrive")
            for n in ("onprem-api1", "cloud-api1")
        }
    found = [n for n, out in outputs.items() if f"shipment {broken['sid']}" in out]
    assert len(found) == 1, outputs
    after = _python(host, AFTER_THE_REDRIVE, base, broken["sid"], broken["token"], broken["key_id"])
    figures = {"failed_after_s": broken["failed_after_s"], "alert_after_s": fired_after}
    print(json.dumps(figures | {"ready_after_s": after["ready_after_s"]}))
    ready = after["api"]
    assert (ready["label_status"], ready["label_failure_reason"]) == ("ready", None), after
    assert ready["tracking_number"] in ready["label"]["content"]
    # the dead-letter queue is empty again: the alert resolves (and the next test starts without it)
    started = time.monotonic()
    while _dead_letter_alert_firing(node(MONITORING_HOST)):
        assert time.monotonic() - started < 90, "PuenteDeadLetters still firing 90 s after the redrive"
        time.sleep(2)
    print(json.dumps({"alert_resolved_after_redrive_s": round(time.monotonic() - started, 1)}))


def test_api_metrics_carry_the_backlog_gauges(node: Callable) -> None:
    got = _scrape(node("onprem-api1"), f"http://{API_NODES['onprem-api1']}:{PORT}/metrics")
    assert got["puente_backlog_up"] == 1
    assert got["puente_outbox_oldest_waiting_age_seconds"] < 60  # the relays keep up
    assert {
        "puente_labels_pending",
        "puente_labels_failed",
        "puente_idempotency_keys_oldest_age_seconds",
    } <= set(got)


def test_the_redrive_entry_point_runs_once_per_site() -> None:
    """`include_role name=api tasks_from=redrive` over api_nodes: the first API node of each site runs the
    command (each site's broker keeps its own dead letters); the other nodes skip it."""
    repo = Path(__file__).resolve().parents[2]
    argv = [
        str(repo / ".venv" / "bin" / "ansible"), "-i", "inventories/lab",
        "--vault-password-file", "inventories/lab/vault-password.lab-only", "api_nodes", "-b", "-o",
        "-m", "ansible.builtin.include_role", "-a", "name=api tasks_from=redrive",
    ]  # fmt: skip
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = {line.split(" | ")[0] for line in done.stdout.splitlines() if "rc=" in line and "redriven" in line}
    skipped = {line.split(" | ")[0] for line in done.stdout.splitlines() if " | SKIPPED" in line}
    assert ran == {"onprem-api1", "cloud-api1"}, done.stdout[-3000:]
    assert "onprem-api2" in skipped and not ran & skipped


@pytest.mark.parametrize("port", sorted(METRICS_PORTS.values()))
def test_metrics_reachable_from_the_monitoring_hosts_only(node: Callable, port: int) -> None:
    """Role common's firewall opens the listeners to the monitoring hosts (roles/puente:
    puente_monitoring_exporters), and to nobody else."""
    url = f"http://{API_NODES['onprem-api1']}:{port}/metrics"
    seen = node(MONITORING_HOST).run(f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' {url}")
    assert seen.stdout == "200", seen
    refused = node(OTHER_HOST).run(f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' {url}")
    assert refused.rc != 0 and refused.stdout in ("", "000"), refused
