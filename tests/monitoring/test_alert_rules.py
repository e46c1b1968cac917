"""The alert rules (roles/monitoring/files/rules/) pass `promtool check rules` and their unit tests
(`promtool test rules`: every alert firing and not firing), and those tests catch a broken rule."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "roles" / "monitoring" / "files" / "rules" / "puente.rules.yml"
TESTS = [HERE / "puente.rules.test.yml", HERE / "puente.rules.slow.test.yml"]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool missing: scripts/bootstrap.sh installs Debian's prometheus"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=300)


def test_rules_are_valid():
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("tests", TESTS, ids=lambda p: p.name)
def test_every_alert_fires_and_stays_quiet_as_tested(tests: Path):
    proc = promtool("test", "rules", str(tests))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_test():
    import yaml

    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested: dict[str, set[bool]] = {}
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                tested.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    assert alerts == set(tested), f"untested: {alerts - set(tested)}, unknown: {set(tested) - alerts}"
    one_sided = {name for name, outcomes in tested.items() if outcomes != {True, False}}
    assert not one_sided, f"tested only firing or only quiet: {sorted(one_sided)}"


# A rule made wrong on purpose must make the unit tests fail: the tests check the thresholds.
@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("(pg_stat_replication_pg_wal_lsn_diff) > 64 *", "(pg_stat_replication_pg_wal_lsn_diff) > 640 *"),
        ("api_write_errors:ratio_rate1h > 14.4 * 0.001", "api_write_errors:ratio_rate1h > 14.4"),
    ],
    ids=["replication-lag-threshold", "fast-burn-threshold"],
)
def test_a_broken_rule_fails_the_tests(tmp_path: Path, original: str, broken: str):
    text = RULES.read_text()
    assert original in text
    rules = tmp_path / "roles" / "monitoring" / "files" / "rules" / RULES.name
    rules.parent.mkdir(parents=True)
    rules.write_text(text.replace(original, broken))
    tests = tmp_path / "tests" / "monitoring" / TESTS[0].name
    tests.parent.mkdir(parents=True)
    shutil.copy(TESTS[0], tests)
    proc = promtool("test", "rules", str(tests))
    assert proc.returncode != 0, proc.stdout
