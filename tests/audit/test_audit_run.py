"""`puente audit` end to end on a synthetic catalogue and two local hosts: statuses, evidence, waivers,
the three report forms and the manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from audit_synthetic import Synthetic, audit_command

from puente.shell import ROOT


def results(out: Path) -> dict[tuple[str, str], dict]:
    doc = json.loads((out / "report.json").read_text())
    return {(r["control_id"], r["host"]): r for r in doc["results"]}


def test_run_passes_with_an_active_waiver_and_writes_three_forms(synthetic_run):
    proc, out = synthetic_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.sha256",
        "junit.xml",
        "report.html",
        "report.json",
    ]
    doc = json.loads((out / "report.json").read_text())
    assert doc["schema"] == "puente-audit/1"
    assert doc["summary"]["status"] == "pass"
    assert doc["summary"]["counts"] | {} == {
        "failed": 0,
        "error": 0,
        "waived": 1,
        "passed": 2,
        "skipped": 0,
        "n/a": 1,
    }
    run = doc["run"]
    assert len(run["git"]["revision"]) == 40
    assert {"python", "pytest", "pytest-testinfra", "pytest-xdist", "ansible-core"} <= set(run["tools"])
    assert run["workers"] >= 1, "hosts are audited in parallel by pytest-xdist"
    # the command pytest ran is printed first, as every step of the CLI
    assert "+ " in proc.stderr and "-p puente.audit.plugin" in proc.stderr
    assert "audit PASS" in proc.stdout and "MANIFEST.sha256 is not signed (--sign-key KEY" in proc.stdout


def test_each_result_carries_its_evidence_per_host(synthetic_run):
    _, out = synthetic_run
    r = results(out)
    waived = r[("PUENTE-DEMO-01", "node-b")]
    assert waived["status"] == "waived"
    assert waived["waiver"]["status"] == "active" and "OPS-42" in waived["waiver"]["justification"]
    assert "node-b config says 'insecure'" in waived["message"]
    assert waived["evidence"] == [
        {
            "kind": "module",
            "what": f"file {Path(out).parent}/state/node-b.conf: content_string",
            "output": "insecure",
        }
    ]
    passed = r[("PUENTE-DEMO-01", "node-a")]
    assert passed["status"] == "passed" and passed["evidence"][0]["output"] == "secure"
    long = r[("PUENTE-DEMO-02", "node-b")]
    assert long["evidence"][0]["kind"] == "command" and long["evidence"][0]["rc"] == 0
    assert ("PUENTE-DEMO-02", "node-a") not in r, "api_nodes control ran on a host outside api_nodes"
    assert r[("PUENTE-DEMO-03", "")]["status"] == "n/a"


def test_junit_carries_control_ids_and_waivers(synthetic_run):
    _, out = synthetic_run
    suite = ET.parse(out / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    waived = next(c for n, c in cases.items() if n.startswith("test_conf[node-b"))
    props = {p.get("name"): p.get("value") for p in waived.iter("property")}
    assert props["control_id"] == "PUENTE-DEMO-01" and props["host"] == "node-b"
    assert props["severity"] == "high" and "insecure" in props["evidence"]
    assert "puente_audit" not in props, "the JSON blob is for report.json only"
    assert waived.find("skipped").get("type") == "pytest.xfail"
    assert suite.find("testsuite").get("name") == "puente-audit"


def test_an_expired_waiver_fails_again(synthetic: Synthetic, tmp_path: Path):
    out = tmp_path / "expired"
    proc = synthetic.audit(out, "--today", "2030-01-01", "--workers", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    r = results(out)[("PUENTE-DEMO-01", "node-b")]
    assert r["status"] == "failed"
    assert r["waiver"]["status"] == "expired"
    assert results(out)[("PUENTE-DEMO-01", "node-a")]["status"] == "passed"
    assert "audit FAIL" in proc.stdout


def test_a_malformed_waivers_file_stops_before_any_host(synthetic: Synthetic, tmp_path: Path):
    bad = tmp_path / "waivers.yml"
    bad.write_text(
        "waivers:\n  - control: PUENTE-DEMO-01\n    hosts: [node-b]\n"
        "    justification: no expiry given here\n"
    )
    argv = audit_command(
        synthetic.inventory, tmp_path / "out", "--waivers", str(bad), "--catalogue", str(synthetic.controls)
    )
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "waiver #1: missing expires" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_verify_accepts_the_report_and_refuses_an_edited_file(synthetic_run, tmp_path: Path):
    _, out = synthetic_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "puente.cli", "audit", "verify", str(copy)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = verify()
    assert ok.returncode == 0 and "OK: 3 files" in ok.stdout, ok.stdout + ok.stderr
    # the same check anyone can do without Puente
    assert (
        subprocess.run(
            ["sha256sum", "-c", "MANIFEST.sha256"], cwd=copy, capture_output=True, check=False
        ).returncode
        == 0
    )
    html = copy / "report.html"
    html.write_text(html.read_text().replace("FAIL", "PASS").replace("failed", "passed", 1))
    bad = verify()
    assert bad.returncode == 1
    assert "FAIL report.html: MODIFIED" in bad.stdout


def test_a_catalogue_that_does_not_load_is_never_a_pass(synthetic: Synthetic, tmp_path: Path):
    broken = tmp_path / "controls"
    shutil.copytree(synthetic.controls, broken)
    (broken / "test_broken.py").write_text("from puente.audit import control\n\ndef test_x(host:\n")
    out = tmp_path / "out"
    argv = audit_command(synthetic.inventory, out, "--catalogue", str(broken), "--workers", "0")
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode not in (0, 1), proc.stdout
    assert json.loads((out / "report.json").read_text())["summary"]["status"] == "incomplete"


def test_controls_are_selected_by_id(synthetic: Synthetic, tmp_path: Path):
    out = tmp_path / "one"
    proc = synthetic.audit(out, "-k", "PUENTE-DEMO-02", "--workers", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r["control_id"] for r in json.loads((out / "report.json").read_text())["results"]} == {
        "PUENTE-DEMO-02"
    }
