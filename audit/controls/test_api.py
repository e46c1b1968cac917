"""The reference API's processes on the API nodes (role api): unprivileged, confined, secrets protected."""

from __future__ import annotations

import pytest
from audit_policy import API_SECRETS_FILE, API_UNITS

from puente.audit import control

# systemd.exec(5) sandboxing; what `systemd-analyze security` weighs most for a network daemon.
HARDENING = [
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("CapabilityBoundingSet", ""),
    ("RestrictSUIDSGID", "yes"),
    ("ProtectKernelModules", "yes"),
]


def unit_properties(host, unit: str) -> dict[str, str]:
    out = host.snapshot(
        "systemctl show %s -p LoadState -p ActiveState -p User -p MainPID "
        + " ".join(f"-p {prop}" for prop, _ in HARDENING),
        unit,
    )
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert props.get("LoadState") == "loaded", f"{unit} is not installed (LoadState={props.get('LoadState')})"
    return props


@control(
    id="PUENTE-API-01",
    title="The API's processes run as an unprivileged user",
    impact=0.8,
    rationale="""A flaw in the API (or a dependency) then gives its attacker that user's rights,
    not root's.""",
    refs={"nist": ["AC-6", "AC-6(9)", "CM-7"]},
    groups=["api_nodes"],
)
@pytest.mark.parametrize("unit", API_UNITS)
def test_api_runs_unprivileged(host, evidence, unit: str):
    props = unit_properties(host, unit)
    assert props["User"] not in ("", "root"), f"{unit} has User={props['User']!r}"
    if props["ActiveState"] != "active" or props["MainPID"] == "0":
        # availability is not this control's concern: a unit caught restarting is judged on its User=
        evidence.record(f"{unit} is {props['ActiveState']}", "no running process: judged on User= only")
        return
    uid = host.check_output("ps -o uid= -p %s", props["MainPID"]).strip()
    assert uid != "0", f"{unit} main process {props['MainPID']} runs as uid 0"


@control(
    id="PUENTE-API-02",
    title="The API's units are sandboxed by systemd",
    impact=0.6,
    rationale="""Sandboxing limits what a compromised API process can reach: no new privileges, a read-only
    system, no devices, no capabilities.""",
    refs={"nist": ["SC-39", "CM-7", "AC-6"]},
    groups=["api_nodes"],
)
@pytest.mark.parametrize(("unit", "prop", "expected"), [(u, p, e) for u in API_UNITS for p, e in HARDENING])
def test_api_unit_hardening(host, unit: str, prop: str, expected: str):
    value = unit_properties(host, unit).get(prop)
    assert value == expected, f"{unit}: {prop}={value!r}, expected {expected!r}"


@control(
    id="PUENTE-API-03",
    title="The API's secrets file is readable by root only",
    impact=0.8,
    rationale="""It holds the database and broker passwords; systemd reads it as root before dropping to the
    service user, so no one else needs it.""",
    refs={"nist": ["AC-3", "IA-5(1)", "SC-28"]},
    groups=["api_nodes"],
)
def test_api_secrets_file_mode(host):
    f = host.file(API_SECRETS_FILE)
    assert f.exists, f"{API_SECRETS_FILE} is missing"
    assert f.user == "root", f"owned by {f.user}"
    assert f.mode & 0o077 == 0, f"{API_SECRETS_FILE} is mode 0{f.mode:o}: readable by group/others"
