"""Monitoring (roles exporters and monitoring, issue 12): each site's Prometheus scrapes every node's
exporter, all of them up, and has Puente's alert rules loaded and healthy.

Asked of each Prometheus through its own HTTP API, from its node (python3's urllib: no extra tool).
"""

from __future__ import annotations

import json

from audit_policy import MONITORING_ALERTS, PROMETHEUS_PORT

from puente.audit import control

_FETCH = (
    "python3 -c 'import sys,urllib.request;"
    "print(urllib.request.urlopen(sys.argv[1],timeout=10).read().decode())' %s"
)


def prometheus_api(host, path: str) -> dict:
    listening = host.snapshot("ss -Hltn sport = :%s", str(PROMETHEUS_PORT)).splitlines()
    addresses = sorted({line.split()[3].rsplit(":", 1)[0] for line in listening if line.strip()})
    assert addresses, f"Prometheus does not listen on port {PROMETHEUS_PORT}"
    answer = json.loads(host.check_output(_FETCH, f"http://{addresses[0]}:{PROMETHEUS_PORT}{path}"))
    assert answer.get("status") == "success", answer
    return answer["data"]


@control(
    id="PUENTE-MON-01",
    title="Every node's exporter is scraped and up, from each site's Prometheus",
    impact=0.6,
    rationale="""A node nobody scrapes fails unseen; a site that only watches itself goes silent with it.
    Each site's Prometheus must scrape the node exporter of every node of BOTH sites and the witness, and
    every one of them must answer, so that a failure is seen from the surviving site.""",
    refs={"nist": ["SI-4", "AU-6", "CP-2(8)"]},
    groups=["monitoring"],
    remediation="ansible-playbook playbooks/monitoring.yml (and playbooks/common.yml for the firewall)",
)
def test_every_node_exporter_is_scraped_and_up(host, evidence, audit_inventory):
    data = prometheus_api(host, "/api/v1/targets?state=active")
    node_targets = {
        t["labels"].get("node", ""): t for t in data["activeTargets"] if t["labels"].get("job") == "node"
    }
    expected = set(audit_inventory.hosts)
    evidence.record(
        "node exporter targets",
        "\n".join(f"{name} {t['health']} {t['scrapeUrl']}" for name, t in sorted(node_targets.items())),
    )
    missing = sorted(expected - set(node_targets))
    down = sorted(
        f"{name} ({t['lastError'] or t['health']})"
        for name, t in node_targets.items()
        if name in expected and t["health"] != "up"
    )
    up = sum(1 for t in data["activeTargets"] if t["health"] == "up")
    evidence.record("targets up (every job)", f"{up} of {len(data['activeTargets'])}")
    assert not missing, f"not scraped: {', '.join(missing)}"
    assert not down, f"scraped but not up: {'; '.join(down)}"


@control(
    id="PUENTE-MON-02",
    title="Puente's alert rules are loaded and evaluate without error",
    impact=0.6,
    rationale="""Alerts are how an operator learns of a failover before the customers do. A rule file that
    did not load, or a rule whose query fails at every evaluation, never fires.""",
    refs={"nist": ["SI-4(5)", "IR-4"]},
    groups=["monitoring"],
    remediation="ansible-playbook playbooks/monitoring.yml; promtool check rules /etc/prometheus/rules/*.yml",
)
def test_alert_rules_loaded(host, evidence):
    rules = [rule for group in prometheus_api(host, "/api/v1/rules")["groups"] for rule in group["rules"]]
    alerts = {r["name"]: r for r in rules if r["type"] == "alerting"}
    listed = "\n".join(f"{name} {r['health']} {r['state']}" for name, r in sorted(alerts.items()))
    evidence.record("alerting rules", listed)
    missing = sorted(MONITORING_ALERTS - set(alerts))
    broken = sorted(f"{r['name']}: {r.get('lastError', '')}" for r in rules if r["health"] == "err")
    assert not missing, f"alert rules not loaded: {', '.join(missing)}"
    assert not broken, f"rules failing to evaluate: {'; '.join(broken)}"
