"""Roles `exporters` and `monitoring` on the lab (issue 12).

Each site's Prometheus (onprem-dns1, cloud-sqs1) scrapes every target of BOTH sites and every one is up
(the count is printed); the alert rules are loaded and healthy; an exporter stopped on one node is seen
down by both Prometheus servers and up again once restarted; an alert posted to a site's Alertmanager
reaches the lab's recording receiver and is kept as a JSON line; postgres_exporter logs in (pg_up 1);
exporters listen on the node's address, not on every interface; Prometheus stays under 200 MiB. (A second
run changes nothing: tests/roles/test_site_idempotence.py runs the whole site twice.)
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import puente_test_support as support
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

PROMETHEUS = {"onprem-dns1": "10.89.1.53", "cloud-sqs1": "10.89.2.41"}
JOBS = {"node", "postgres", "patroni", "etcd", "haproxy", "nginx", "rabbitmq", "powerdns", "api",
        "api_relay", "api_worker",
        "prometheus", "alertmanager"}  # fmt: skip
RECEIVER_LOG = "/var/log/puente-alerts/alerts.jsonl"
MEMORY_LIMIT_MIB = 200


def api(address: str, path: str, port: int = 9090, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    url = f"http://{address}:{port}{path}"
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def targets(address: str) -> list[dict[str, Any]]:
    return api(address, "/api/v1/targets?state=active")["data"]["activeTargets"]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90) -> Any:
    return support.wait_for(what, check, timeout=timeout, interval=2)


@pytest.mark.parametrize("host", sorted(PROMETHEUS))
def test_every_target_of_both_sites_is_up(host: str, lab, capsys):
    def all_up() -> list[dict[str, Any]] | None:
        found = targets(PROMETHEUS[host])
        return found if found and all(t["health"] == "up" for t in found) else None

    try:
        found = wait_for(f"every target up in {host}'s Prometheus", all_up)
    except AssertionError:
        down = [
            f"{t['labels']['job']}/{t['labels'].get('node')}: {t['lastError']}"
            for t in targets(PROMETHEUS[host])
            if t["health"] != "up"
        ]
        raise AssertionError(f"targets down in {host}'s Prometheus: {down}") from None
    with capsys.disabled():  # issue 12's acceptance: the count is printed, in CI's log too
        print(f"\n{host}: {len(found)} targets, all up")
    assert {t["labels"]["job"] for t in found} >= JOBS
    assert {t["labels"]["node"] for t in found if t["labels"]["job"] == "node"} == set(lab.nodes)
    assert {t["labels"]["site"] for t in found} >= {"onprem", "cloud", "witness"}


@pytest.mark.parametrize("host", sorted(PROMETHEUS))
def test_alert_rules_are_loaded_and_healthy(host: str):
    groups = api(PROMETHEUS[host], "/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    alerts = {r["name"] for r in rules if r["type"] == "alerting"}
    assert alerts >= {"PuenteSiteDown", "PuenteEtcdQuorumAtRisk", "PuenteApiErrorBudgetBurnFast"}
    assert not [r["name"] for r in rules if r["health"] != "ok" and r.get("lastError")]


def test_a_stopped_exporter_is_seen_down_from_both_sites_then_up(node):
    victim = node("witness1")

    def health() -> set[str]:
        return {
            t["health"]
            for address in PROMETHEUS.values()
            for t in targets(address)
            if t["labels"]["job"] == "node" and t["labels"]["node"] == "witness1"
        }

    victim.run("systemctl stop prometheus-node-exporter")
    try:
        wait_for("witness1's node exporter down in both", lambda: health() == {"down"}, timeout=60)
    finally:
        victim.run("systemctl start prometheus-node-exporter")
    wait_for("witness1's node exporter up again in both", lambda: health() == {"up"}, timeout=60)


@pytest.mark.parametrize("host", sorted(PROMETHEUS))
def test_an_alert_reaches_the_lab_receiver_and_is_kept(host: str, node):
    marker = f"PuenteLabProbe{uuid.uuid4().hex[:8]}"
    api(PROMETHEUS[host], "/api/v2/alerts", port=9093, body=[
        {"labels": {"alertname": marker, "severity": "info", "site": "lab-test"},
         "annotations": {"summary": "posted by tests/roles/test_monitoring.py"}},
    ])  # fmt: skip
    receiver = node(host)

    def recorded() -> list[dict[str, Any]]:
        out = receiver.run("grep -h %s %s", marker, RECEIVER_LOG).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    lines = wait_for(f"{marker} in {host}:{RECEIVER_LOG}", recorded, timeout=60)
    assert lines[0]["status"] == "firing" and lines[0]["labels"]["site"] == "lab-test"
    assert lines[0]["annotations"]["summary"].startswith("posted by")
    assert receiver.service("puente-alert-receiver").is_enabled
    assert receiver.file(RECEIVER_LOG).mode & 0o004, "the log is readable by everyone on the node"


def test_postgres_exporter_logs_in_as_its_monitoring_role():
    query = urllib.parse.quote("pg_up")
    result = api(PROMETHEUS["onprem-dns1"], f"/api/v1/query?query={query}")["data"]["result"]
    assert {r["metric"]["node"]: r["value"][1] for r in result} == {
        "onprem-db1": "1", "onprem-db2": "1", "cloud-db1": "1"}  # fmt: skip


def test_the_exporters_database_role_reads_statistics_only(node):
    flags = "rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
    member = "pg_has_role(oid, 'pg_monitor', 'MEMBER')"
    query = f"SELECT {flags}, {member} FROM pg_roles WHERE rolname = 'prometheus'"
    out = node("onprem-db1").check_output("runuser -u postgres -- psql -XAtc %s", query)
    assert out == "f|f|f|f|f|t", out


@pytest.mark.parametrize(("host", "port"), [("onprem-db1", 9100), ("onprem-db1", 9187), ("onprem-db1", 2381),
                                            ("onprem-edge1", 8405), ("onprem-edge1", 9113),
                                            ("onprem-mq1", 15692), ("onprem-dns1", 9090)])  # fmt: skip
def test_exporters_listen_on_the_node_address_only(node, host: str, port: int):
    listening = node(host).run("ss -Hltn sport = :%s", str(port)).stdout.split("\n")
    local = sorted({line.split()[3] for line in listening if line.strip()})
    assert local and all(not a.startswith(("0.0.0.0:", "*:", "[::]:")) for a in local), local


@pytest.mark.parametrize("host", sorted(PROMETHEUS))
def test_prometheus_memory_stays_under_the_lab_limit(host: str, node):
    rss_kib = int(node(host).run("ps -C prometheus -o rss=").stdout.split()[0])
    print(f"{host}: prometheus RSS {rss_kib / 1024:.0f} MiB")
    assert rss_kib / 1024 <= MEMORY_LIMIT_MIB
