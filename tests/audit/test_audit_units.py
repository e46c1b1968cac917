"""Small pieces of the audit machinery: severity bands, control declarations, waivers, drift parsing,
evidence trimming."""

from __future__ import annotations

import datetime as dt

import pytest

from puente.audit import catalogue, drift, waivers
from puente.audit.evidence import trim


@pytest.mark.parametrize(
    ("impact", "name"),
    [
        (0.0, "none"),
        (0.1, "low"),
        (0.39, "low"),
        (0.4, "medium"),
        (0.69, "medium"),
        (0.7, "high"),
        (0.89, "high"),
        (0.9, "critical"),
        (1.0, "critical"),
    ],
)
def test_impact_maps_to_inspec_severity(impact: float, name: str):
    assert catalogue.severity(impact) == name


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"id": "SSH-1"}, "does not match"),
        ({"groups": ["webservers"]}, "unknown or empty groups"),
        ({"groups": []}, "unknown or empty groups"),
        ({"refs": {"cis": "5.2.10"}}, "NIST"),
        ({"impact": 1.5}, "impact must be within"),
    ],
)
def test_a_bad_control_declaration_fails_at_import(kwargs: dict, error: str):
    good = {
        "id": "PUENTE-UNIT-01",
        "title": "t",
        "impact": 0.5,
        "rationale": "r",
        "refs": {"nist": ["CM-6"]},
        "groups": ["all"],
    }
    with pytest.raises(ValueError, match=error):
        catalogue.control(**(good | kwargs))


def _waiver(**over: object) -> dict:
    return {
        "control": "PUENTE-SSH-01",
        "hosts": ["onprem-db*"],
        "justification": "accepted by the CISO",
        "expires": dt.date(2027, 1, 31),
    } | over


def test_a_waiver_covers_its_hosts_until_the_start_of_its_expiry_day():
    (w,) = waivers.parse({"waivers": [_waiver()]})
    assert w.covers("PUENTE-SSH-01", "onprem-db2") and not w.covers("PUENTE-SSH-01", "onprem-api1")
    assert not w.covers("PUENTE-SSH-02", "onprem-db2")
    assert w.active(dt.date(2027, 1, 30)) and not w.active(dt.date(2027, 1, 31))


def test_the_latest_waiver_wins():
    old, new = waivers.parse({"waivers": [_waiver(expires="2025-01-01"), _waiver(expires="2028-01-01")]})
    assert waivers.find([old, new], "PUENTE-SSH-01", "onprem-db1") is new
    assert waivers.find([old, new], "PUENTE-SSH-01", "onprem-api1") is None


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (_waiver(expires=None), "expires must be a date"),
        (_waiver(expires="next year"), "not an ISO date"),
        ({k: v for k, v in _waiver().items() if k != "expires"}, "missing expires"),
        (_waiver(control="ssh"), "is not a control id"),
        (_waiver(hosts=[]), "hosts must be a non-empty list"),
        (_waiver(justification="ok"), "justification must say why"),
        (_waiver(owner="me"), "unknown field"),
    ],
)
def test_a_malformed_waiver_is_refused_with_its_position(entry: dict, error: str):
    with pytest.raises(waivers.WaiverError, match=f"waiver #1.*{error}"):
        waivers.parse({"waivers": [entry]}, "w.yml")


CHECK_OUTPUT = """\
PLAY [Common baseline] *********************************************************

TASK [common : 5.2.10 | Ensure sshd PermitRootLogin is disabled] ***************
ok: [onprem-api1]
changed: [onprem-api2]
--- before: /etc/ssh/sshd_config
+++ after: /etc/ssh/sshd_config

RUNNING HANDLER [common : Restart sshd] ****************************************
changed: [onprem-api2]

PLAY RECAP *********************************************************************
onprem-api1                : ok=12   changed=0    unreachable=0    failed=0    skipped=1    rescued=0
onprem-api2                : ok=12   changed=2    unreachable=0    failed=0    skipped=1    rescued=0
"""


def test_drift_counts_changes_per_host_from_the_recap():
    parsed = drift.parse(CHECK_OUTPUT)
    assert parsed["hosts"]["onprem-api2"]["changed"] == 2 and parsed["hosts"]["onprem-api1"]["changed"] == 0
    assert parsed["changes"] == [
        "onprem-api2: common : 5.2.10 | Ensure sshd PermitRootLogin is disabled",
        "onprem-api2: common : Restart sshd",
    ]
    assert drift.summarise(parsed, 0) == "drift: 2 changes on onprem-api2"


def test_no_changes_is_no_drift_and_no_recap_is_not_a_pass():
    clean = CHECK_OUTPUT.replace("changed=2", "changed=0")
    assert drift.summarise(drift.parse(clean), 0) == "drift: none"
    broken = drift.parse("ERROR! the playbook could not be found")
    assert drift.summarise(broken, 1).startswith("drift: unknown")


def test_evidence_keeps_head_and_tail_of_long_output():
    text = "\n".join(f"line {i}" for i in range(100))
    out = trim(text, max_lines=10)
    assert out.splitlines()[0] == "line 0" and out.splitlines()[-1] == "line 99"
    assert "90 lines trimmed" in out
