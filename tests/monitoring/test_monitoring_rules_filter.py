"""roles/monitoring/filter_plugins/monitoring_rules.py: the rules file with an inventory's own ranges, and
the lab's rendering of it passing promtool (check, and a leader change that resolves within a minute at
the lab's 10 s pace)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "roles" / "monitoring" / "files" / "rules" / "puente.rules.yml"
LAB_OVERRIDES = REPO / "inventories" / "lab" / "group_vars" / "lab" / "overrides.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


flt = load_module(REPO / "roles" / "monitoring" / "filter_plugins" / "monitoring_rules.py")
TEXT = RULES.read_text()


def expr_of(text: str, alert: str) -> str:
    doc = yaml.safe_load(text)
    return next(r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == alert)


def promtool_test(folder: Path, rules: str, case: str) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of ``case`` against ``rules``, written as puente.rules.yml in ``folder``."""
    (folder / "puente.rules.yml").write_text(rules)
    (folder / "lab.test.yml").write_text(case)
    return subprocess.run(
        [PROMTOOL, "test", "rules", str(folder / "lab.test.yml")], capture_output=True, text=True
    )


def test_no_ranges_is_the_file_as_it_is():
    assert flt.monitoring_rule_ranges(TEXT, {}) == TEXT
    assert flt.monitoring_rule_ranges(TEXT.rstrip("\n"), None) == TEXT


def test_the_named_alert_gets_its_range_and_nothing_else_changes():
    out = flt.monitoring_rule_ranges(TEXT, {"PuenteDatabaseLeaderChanged": "30s"})
    assert "[30s]" in expr_of(out, "PuenteDatabaseLeaderChanged")
    assert "[5m]" not in expr_of(out, "PuenteDatabaseLeaderChanged")
    before, after = yaml.safe_load(TEXT), yaml.safe_load(out)
    for g0, g1 in zip(before["groups"], after["groups"], strict=True):
        for r0, r1 in zip(g0["rules"], g1["rules"], strict=True):
            if r0.get("alert") != "PuenteDatabaseLeaderChanged":
                assert r0 == r1
            else:
                assert r1 == r0 | {"expr": r1["expr"]}
    assert out.startswith("# Puente's alert rules") and "PuenteDatabaseLeaderChanged: 30s" in out


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"PuenteNoSuchAlert": "30s"}, "no alert 'PuenteNoSuchAlert'"),
        ({"PuenteDatabaseLeaderChanged": "30 seconds"}, "is not a duration"),
        ({"PuenteDatabaseLeaderChanged": 30}, "is not a duration"),
        ({"PuenteSiteDown": "1m"}, "has no range"),
        (["PuenteDatabaseLeaderChanged"], "expected alert name -> duration"),
    ],
    ids=["unknown-alert", "bad-duration", "number", "no-range", "not-a-mapping"],
)
def test_refused(ranges, message: str):
    with pytest.raises(AnsibleFilterError, match=message):
        flt.monitoring_rule_ranges(TEXT, ranges)


def test_a_subquery_is_refused():
    text = TEXT.replace("changes(patroni_postgres_timeline[5m])", "changes(patroni_postgres_timeline[5m:1m])")
    with pytest.raises(AnsibleFilterError, match="subqueries"):
        flt.monitoring_rule_ranges(text, {"PuenteDatabaseLeaderChanged": "30s"})


# At the lab's pace (10 s scrapes, 5 s evaluations): a promotion at 60 s fires at once and, with the lab's
# range, is over within the half minute after, where the production range would keep it 5 minutes.
LAB_LEADER_CASE = """
rule_files: [puente.rules.yml]
evaluation_interval: 5s
tests:
  - interval: 10s
    input_series:
      - series: patroni_postgres_timeline{job="patroni", scope="puente", node="cloud-db1"}
        values: 3 3 3 3 3 3 4 4 4 4 4 4 4 4 4 4 4 4
      - series: patroni_primary{job="patroni", scope="puente", node="cloud-db1"}
        values: 0 0 0 0 0 0 1 1 1 1 1 1 1 1 1 1 1 1
    alert_rule_test:
      - eval_time: 55s
        alertname: PuenteDatabaseLeaderChanged
        exp_alerts: []
      - eval_time: 65s
        alertname: PuenteDatabaseLeaderChanged
        exp_alerts:
          - exp_labels: {severity: info, scope: puente, node: cloud-db1}
            exp_annotations:
              summary: "PostgreSQL cluster puente: the leader changed to cloud-db1"
              description: "cloud-db1 was promoted recently (its timeline changed) and leads now."
      - eval_time: 100s
        alertname: PuenteDatabaseLeaderChanged
        exp_alerts: []
"""


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool missing: scripts/bootstrap.sh installs it")
def test_the_labs_rules_pass_promtool_and_resolve_a_leader_change_within_a_minute(tmp_path: Path):
    ranges = yaml.safe_load(LAB_OVERRIDES.read_text())["monitoring_rule_ranges"]
    assert ranges, "the lab sets its own ranges"
    proc = promtool_test(tmp_path, flt.monitoring_rule_ranges(TEXT, ranges), LAB_LEADER_CASE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(tmp_path / "puente.rules.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # the same case against the production file fails: the test sees the range
    proc = promtool_test(tmp_path, TEXT, LAB_LEADER_CASE)
    assert proc.returncode != 0, proc.stdout


def hold_of(text: str, alert: str) -> str | None:
    doc = yaml.safe_load(text)
    return next(r.get("for") for g in doc["groups"] for r in g["rules"] if r.get("alert") == alert)


def test_no_holds_is_the_file_as_it_is_and_a_named_alert_gets_its_hold():
    assert flt.monitoring_rule_holds(TEXT, {}) == TEXT
    out = flt.monitoring_rule_holds(TEXT, {"PuenteSiteDown": "0s"})
    assert hold_of(TEXT, "PuenteSiteDown") == "10s" and hold_of(out, "PuenteSiteDown") == "0s"
    before, after = yaml.safe_load(TEXT), yaml.safe_load(out)
    changed = [
        r1["alert"]
        for g0, g1 in zip(before["groups"], after["groups"], strict=True)
        for r0, r1 in zip(g0["rules"], g1["rules"], strict=True)
        if r0 != r1
    ]
    assert changed == ["PuenteSiteDown"]


def test_ranges_then_holds_keep_both_and_say_so():
    out = flt.monitoring_rule_holds(
        flt.monitoring_rule_ranges(TEXT, {"PuenteDatabaseLeaderChanged": "30s"}), {"PuenteSiteDown": "0s"}
    )
    assert "[30s]" in expr_of(out, "PuenteDatabaseLeaderChanged") and hold_of(out, "PuenteSiteDown") == "0s"
    assert "(monitoring_rule_ranges): PuenteDatabaseLeaderChanged: 30s" in out
    assert "(monitoring_rule_holds): PuenteSiteDown: 0s" in out


@pytest.mark.parametrize(
    ("holds", "message"),
    [
        ({"PuenteNoSuchAlert": "0s"}, "no alert 'PuenteNoSuchAlert'"),
        ({"PuenteSiteDown": "soon"}, "is not a duration"),
        ("PuenteSiteDown", "expected alert name -> duration"),
    ],
    ids=["unknown-alert", "bad-duration", "not-a-mapping"],
)
def test_holds_refused(holds, message: str):
    with pytest.raises(AnsibleFilterError, match=message):
        flt.monitoring_rule_holds(TEXT, holds)


# At the lab's pace: the on-prem nodes stop answering with the scrape at 60 s. With the lab's hold the site
# is down at the first evaluation that sees it; the production file's 10 s hold is still pending then.
LAB_SITE_DOWN_CASE = """
rule_files: [puente.rules.yml]
evaluation_interval: 2s
tests:
  - interval: 10s
    input_series:
      - series: up{job="node", site="onprem", node="onprem-db1"}
        values: 1 1 1 1 1 1 0 0 0
      - series: up{job="node", site="onprem", node="onprem-api1"}
        values: 1 1 1 1 1 1 0 0 0
      - series: up{job="node", site="onprem", node="onprem-dns1"}
        values: 1 1 1 1 1 1 1 1 1
    alert_rule_test:
      - eval_time: 58s
        alertname: PuenteSiteDown
        exp_alerts: []
      - eval_time: 62s
        alertname: PuenteSiteDown
        exp_alerts:
          - exp_labels: {severity: page, site: onprem}
            exp_annotations:
              summary: "Site onprem: most nodes do not answer"
              description: "Fewer than half of the node exporters of site onprem answered for 10 s."
"""


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool missing: scripts/bootstrap.sh installs it")
def test_the_labs_site_down_fires_at_the_first_evaluation_that_sees_it(tmp_path: Path):
    holds = yaml.safe_load(LAB_OVERRIDES.read_text())["monitoring_rule_holds"]
    assert holds.get("PuenteSiteDown") == "0s"
    proc = promtool_test(tmp_path, flt.monitoring_rule_holds(TEXT, holds), LAB_SITE_DOWN_CASE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = promtool_test(tmp_path, TEXT, LAB_SITE_DOWN_CASE)
    assert proc.returncode != 0, proc.stdout
