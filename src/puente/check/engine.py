"""Every inventory rule over one deployment, in the order docs/CHECK.md lists them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from puente.check.findings import Finding, hosts_phrase, show_path
from puente.check.inventory import Deployment
from puente.check.rules import database_url, etcd, placeholders, platform, replication, required, secrets, tls

RULES = (
    required.check,
    secrets.check,
    placeholders.check,
    etcd.check,
    replication.check,
    database_url.check,
    tls.check,
)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not inspected, and why


def check_inventory(d: Deployment, facts: Mapping[str, Mapping[str, Any]] | None = None) -> Report:
    report = Report(findings=list(d.problems))
    for rule in RULES:
        try:
            report.findings += rule(d)
        except Exception as exc:  # a value of a shape no rule expected: say so, run the other rules
            report.findings.append(
                Finding(
                    "internal",
                    rule.__module__,
                    f"this rule could not run: {exc!r}",
                    "report it as a bug of puente check (with the inventory value it names); the other "
                    "rules ran.",
                )
            )
    os_findings, unknown = platform.check(d, facts)
    report.findings += os_findings
    if d.uninspected:
        report.notes.append(
            "encrypted, not inspected (no vault password given): "
            + ", ".join(show_path(p) for p in d.uninspected)
        )
    if unknown:
        report.notes.append(
            f"OS not checked for {len(unknown)} host(s) ({hosts_phrase(unknown)}): no facts cached; --facts "
            "gathers them (read-only), and site.yml's preflight checks them itself."
        )
    return report


def platforms_by_host(d: Deployment) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """host -> role -> [{name, versions}]: what the preflight's fact play checks each host against."""
    return {
        name: {
            role: [{"name": p.name, "versions": list(p.versions)} for p in platforms]
            for role, platforms in platform.supported(host.roles).items()
        }
        for name, host in d.hosts.items()
    }
