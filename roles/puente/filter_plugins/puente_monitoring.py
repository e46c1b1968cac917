"""Filters of the monitoring wiring (issue 12): one table of exporters (``puente_monitoring_exporters`` in
roles/puente defaults) read by the firewall of every node and by the Prometheus servers.

A row is ``{job, group, port, scheme?, path?, operators?, drop?}``; ``group: all`` means every node;
``drop`` is a regular expression of metric names not kept. Tested in
tests/monitoring/test_monitoring_filters.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ansible.errors import AnsibleFilterError

_EVERY_NODE = "all"


def _rows(exporters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(exporters, list):
        raise AnsibleFilterError(f"puente_monitoring: the exporters table must be a list, got {exporters!r}")
    for row in exporters:
        if not isinstance(row, dict) or not {"job", "group", "port"} <= row.keys():
            raise AnsibleFilterError(f"puente_monitoring: an exporter needs job, group and port, got {row!r}")
        if not str(row["port"]).isdigit() or not 0 < int(row["port"]) <= 65535:
            raise AnsibleFilterError(f"puente_monitoring: port must be 1-65535 in {row!r}")
        if row.get("scheme", "http") not in ("http", "https"):
            raise AnsibleFilterError(f"puente_monitoring: scheme must be http or https in {row!r}")
    return exporters


def puente_monitoring_firewall(
    exporters: list[dict[str, Any]],
    group_names: list[str],
    sources: list[str],
    operators: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The firewall rules (role common's shape) that let ``sources`` scrape this host's exporters; rows
    marked ``operators: true`` (the Prometheus and Alertmanager UIs) also let ``operators`` in.

    No sources, no rule: an empty ``from`` would mean "any" to the firewall, never what is meant here.
    """
    ports: dict[int, list[str]] = {}
    for row in _rows(exporters):
        if row["group"] != _EVERY_NODE and row["group"] not in group_names:
            continue
        allowed = list(sources) + (list(operators or []) if row.get("operators") else [])
        current = ports.setdefault(int(row["port"]), []) if allowed else []
        current.extend(a for a in dict.fromkeys(allowed) if a not in current)
    return [{"port": port, "proto": "tcp", "from": ports[port]} for port in sorted(ports)]


def _address(host: str, hostvars: Any) -> str:
    raw = hostvars[host].get("ansible_host") or host
    try:
        return str(ipaddress.ip_address(str(raw)))
    except ValueError as exc:
        raise AnsibleFilterError(f"puente_monitoring: host {host!r} has no IP address ({raw!r})") from exc


def puente_monitoring_cidrs(sources: list[str], groups: dict[str, list[str]], hostvars: Any) -> list[str]:
    """Monitoring sources (group names or CIDRs) as sorted CIDRs, for a service's own allow list."""
    out: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for item in sources:
        if item in groups:
            out.update(ipaddress.ip_network(_address(h, hostvars)) for h in groups[item])
            continue
        try:
            out.add(ipaddress.ip_network(str(item), strict=False))
        except ValueError as exc:
            raise AnsibleFilterError(f"puente_monitoring: {item!r} is neither a group nor a CIDR") from exc
    return [str(n) for n in sorted(out, key=lambda n: (n.version, n.network_address, n.prefixlen))]


def _target(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def puente_scrape_configs(
    exporters: list[dict[str, Any]],
    groups: dict[str, list[str]],
    hostvars: Any,
    ca_file: str = "",
) -> list[dict[str, Any]]:
    """Prometheus ``scrape_configs``: one job per row, every member of its group on every site.

    Each target carries ``site`` (the host's ``puente_site``) and ``node`` (its inventory name), so an
    alert names the site and the node whatever address the target has. A row with scheme https is
    verified against ``ca_file`` (the CA that signs the members' certificates).
    """
    every_node = sorted({h for name, members in groups.items() if name != "ungrouped" for h in members})
    jobs = []
    for row in _rows(exporters):
        members = every_node if row["group"] == _EVERY_NODE else sorted(groups.get(row["group"], []))
        if not members:
            continue
        static = [
            {
                "targets": [_target(_address(host, hostvars), int(row["port"]))],
                "labels": {"site": str(hostvars[host].get("puente_site", "unknown")), "node": host},
            }
            for host in members
        ]
        job: dict[str, Any] = {"job_name": row["job"], "static_configs": static}
        if row.get("path"):
            job["metrics_path"] = row["path"]
        if row.get("drop"):
            # series nobody reads, dropped after the scrape (they cost the TSDB's memory, not the exporter's)
            job["metric_relabel_configs"] = [
                {"source_labels": ["__name__"], "regex": row["drop"], "action": "drop"}
            ]
        if row.get("scheme", "http") == "https":
            if not ca_file:
                raise AnsibleFilterError(f"puente_monitoring: job {row['job']} is https without a CA file")
            job["scheme"] = "https"
            job["tls_config"] = {"ca_file": ca_file}
        jobs.append(job)
    return jobs


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "puente_monitoring_firewall": puente_monitoring_firewall,
            "puente_monitoring_cidrs": puente_monitoring_cidrs,
            "puente_scrape_configs": puente_scrape_configs,
        }
