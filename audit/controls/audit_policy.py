"""What the controls expect, written once and independently of the roles' variables.

The audit states Puente's security policy here (ports per role, service paths, ages); it does not read it
from the playbooks, so a role that drifts from the policy is caught instead of being trusted. Change a
value here only together with the decision it records (docs/AUDIT.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

# Ports a host may LISTEN on / ACCEPT in its firewall, on non-loopback addresses, by inventory group.
# ssh on every host; the rest per role (CONTRACTS: request path, Patroni REST, etcd, AMQP, DNS).
ALLOWED_PORTS: dict[str, set[tuple[str, int]]] = {
    "all": {("tcp", 22)},
    "gateways": {("tcp", 80), ("tcp", 443)},
    # PostgreSQL frontends: writes to the leader (5432), reads to the site's leader or synchronous
    # standby (5433, roles/haproxy's postgresql_read).
    "loadbalancers": {("tcp", 5432), ("tcp", 5433)},
    "api_nodes": {("tcp", 8080)},
    "postgresql": {("tcp", 5432), ("tcp", 8008)},
    "etcd": {("tcp", 2379), ("tcp", 2380)},
    # epmd (4369) and Erlang distribution (25672) always listen; the firewall opens them only between
    # members of a multi-node cluster. CLI tools (rabbitmqctl, rabbitmq-diagnostics) listen on one port of
    # 35672-35682 while they run (https://www.rabbitmq.com/docs/networking#ports).
    "rabbitmq": {
        ("tcp", 5672),
        ("tcp", 5671),
        ("tcp", 4369),
        ("tcp", 25672),
        *(("tcp", port) for port in range(35672, 35683)),
    },
    "dns": {("tcp", 53), ("udp", 53)},
    "sqs": {("tcp", 5000)},
    # The lab's S3 stand-ins of the backup repositories (role lab_s3), HTTPS.
    "backup_s3": {("tcp", 9000)},
    # Prometheus (9090) and Alertmanager (9093) of each site (role monitoring); the lab's alert receiver
    # listens on loopback only.
    "monitoring": {("tcp", 9090), ("tcp", 9093)},
    # IKE and IKE behind NAT / ESP in UDP (role vpn: the on-prem gateway, and the lab's stand-in for AWS's
    # end); the firewall opens them to the tunnels' peers only.
    "vpn": {("udp", 500), ("udp", 4500)},
    "aws_vpn": {("udp", 500), ("udp", 4500)},
}
# The exporters Prometheus scrapes (role exporters, and the services' own /metrics), by inventory group;
# a host may also listen and accept on these (added to ALLOWED_PORTS below). Firewalled to the
# monitoring hosts; the audit checks they are scraped and up (PUENTE-MON-01).
METRICS_PORTS: dict[str, set[tuple[str, int]]] = {
    "all": {("tcp", 9100)},  # node_exporter
    "postgresql": {("tcp", 9187)},  # postgres_exporter (Patroni's /metrics: 8008)
    "etcd": {("tcp", 2381)},  # etcd's plain /metrics listener
    "loadbalancers": {("tcp", 8405)},  # HAProxy's Prometheus exporter
    "gateways": {("tcp", 9113)},  # the nginx exporter
    "rabbitmq": {("tcp", 15692)},  # rabbitmq_prometheus
    "dns": {("tcp", 8081)},  # PowerDNS's webserver (/metrics; /api needs the key)
    "api_nodes": {("tcp", 9471), ("tcp", 9472)},  # the relay's and the worker's (the API's: 8080)
}
for _group, _ports in METRICS_PORTS.items():
    ALLOWED_PORTS.setdefault(_group, set()).update(_ports)
# Puente's alert rules every Prometheus must have loaded (issue 12; roles/monitoring/files/rules/).
MONITORING_ALERTS = frozenset(
    {
        "PuenteSiteDown",
        "PuenteDatabaseLeaderChanged",
        "PuenteDatabaseNoLeader",
        "PuenteDatabaseNoSyncStandby",
        "PuenteDatabaseReplicationLag",
        "PuenteEtcdQuorumAtRisk",
        "PuenteBackupTooOld",
        "PuenteOutboxLag",
        "PuenteDeadLetters",
        "PuenteCertificateExpiring",
        "PuenteDiskFilling",
        "PuenteApiErrorBudgetBurnFast",
        "PuenteApiErrorBudgetBurnSlow",
    }
)
PROMETHEUS_PORT = 9090
# Patroni's REST API (one of the postgresql ports above): its write endpoints must ask for credentials.
PATRONI_REST_PORT = 8008
# Patroni's REST API is HTTPS, its certificate signed by the CA roles/postgresql installs on each member.
PATRONI_REST_CA = "/etc/patroni/ssl/ca.crt"
# etcd's client and peer ports, and where roles/etcd keeps the member's certificate, key and CA.
ETCD_PORTS = (2379, 2380)
ETCD_TLS_DIR = "/etc/etcd/tls"
# The API's runtime settings (roles/api): its database URLs.
API_RUNTIME_FILE = "/etc/puente/api.env"

# Directories that hold a service's code, configuration or data, by inventory group: nothing in them may
# be writable by every user.
SERVICE_PATHS: dict[str, list[str]] = {
    "all": [
        "/etc/ssh",
        "/etc/systemd/system",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/etc/nftables.conf",
        "/etc/sudoers.d",
    ],
    "gateways": ["/etc/nginx"],
    "loadbalancers": ["/etc/haproxy"],
    "api_nodes": ["/opt/puente-api", "/etc/puente"],
    "postgresql": ["/etc/patroni", "/var/lib/postgresql", "/etc/pgbackrest", "/var/lib/pgbackrest"],
    "etcd": ["/etc/default/etcd", "/var/lib/etcd"],
    "rabbitmq": ["/etc/rabbitmq", "/var/lib/rabbitmq"],
    "dns": ["/etc/powerdns", "/var/lib/powerdns"],
    "backup_s3": ["/opt/lab-s3"],
    "monitoring": ["/etc/prometheus", "/var/lib/prometheus"],
}

# The API's processes (role api) and its secrets file.
API_UNITS = ["puente-api", "puente-api-relay", "puente-api-worker"]
API_SECRETS_FILE = "/etc/puente/api-secrets.env"

# Backups (role pgbackrest): a full one weekly (8 days leaves a day for a slow or retried run), WAL shipped
# within archive_timeout (5 min is five times it), a restore drill proven weekly (puente drill restore
# records its result on every member).
PGBACKREST_CONF = "/etc/pgbackrest/pgbackrest.conf"
PGBACKREST_TIMERS = ["pgbackrest-full.timer", "pgbackrest-diff.timer", "pgbackrest-verify.timer"]
FULL_BACKUP_MAX_AGE_DAYS = 8
ARCHIVE_MAX_LAG_MINUTES = 5
RESTORE_DRILL_MAX_AGE_DAYS = 7
RESTORE_DRILL_RESULT = "/var/lib/pgbackrest/last-restore-drill.json"
# A certificate that expires within this many days fails: time to renew without an outage.
CERT_MIN_DAYS_LEFT = 30


def allowed_ports(groups: Iterable[str]) -> set[tuple[str, int]]:
    allowed = set(ALLOWED_PORTS["all"])
    for group in groups:
        allowed |= ALLOWED_PORTS.get(group, set())
    return allowed


def service_paths(groups: Iterable[str]) -> list[str]:
    paths = list(SERVICE_PATHS["all"])
    for group in sorted(groups):
        paths += SERVICE_PATHS.get(group, [])
    return paths


# --- nftables (`nft -j list ruleset`) ---------------------------------------------------------------


def nft_objects(ruleset_json: str, kind: str) -> Iterator[dict[str, Any]]:
    for obj in json.loads(ruleset_json).get("nftables", []):
        if kind in obj:
            yield obj[kind]


def input_chains(ruleset_json: str) -> list[dict[str, Any]]:
    """Base chains hooked on input (any table, any family)."""
    return [c for c in nft_objects(ruleset_json, "chain") if c.get("hook") == "input"]


def _ports(right: Any) -> list[tuple[int, int]]:
    if isinstance(right, int):
        return [(right, right)]
    if isinstance(right, str) and right.isdigit():
        return [(int(right), int(right))]
    if isinstance(right, dict) and "range" in right:
        lo, hi = right["range"]
        return [(int(lo), int(hi))]
    if isinstance(right, dict) and "set" in right:
        return [p for item in right["set"] for p in _ports(item)]
    return []


def accepted_ports(ruleset_json: str) -> list[tuple[str, int, int, str]]:
    """(proto, first port, last port, rule text) of every input rule that accepts by destination port."""
    chains = {(c["family"], c["table"], c["name"]) for c in input_chains(ruleset_json)}
    found = []
    for rule in nft_objects(ruleset_json, "rule"):
        if (rule["family"], rule["table"], rule["chain"]) not in chains:
            continue
        exprs = rule.get("expr", [])
        if not any("accept" in e for e in exprs):
            continue
        for e in exprs:
            match = e.get("match", {})
            payload = match.get("left", {}).get("payload", {}) if isinstance(match.get("left"), dict) else {}
            if payload.get("field") == "dport" and match.get("op") in ("==", "in"):
                for lo, hi in _ports(match.get("right")):
                    found.append((payload.get("protocol", "?"), lo, hi, json.dumps(exprs)[:300]))
    return found
