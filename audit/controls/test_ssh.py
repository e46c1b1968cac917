"""SSH daemon hardening (CIS Debian Linux 12 Benchmark v1.1.0, section 5.1).

Judged on `sshd -T`: the configuration sshd actually computes from sshd_config and its drop-ins (the first
value of a keyword wins), not on one file's text.
"""

from __future__ import annotations

import pytest

from puente.audit import control


def sshd_setting(host, keyword: str) -> str:
    """One effective setting; recorded on its own so the evidence shows it even when the full output is
    trimmed."""
    out = host.snapshot("sshd -T -C user=nobody,host=audit.invalid,addr=192.0.2.1")
    value = dict(line.split(" ", 1) for line in out.splitlines() if " " in line).get(keyword, "")
    host.evidence.record("sshd effective setting", f"{keyword} {value or '(not set)'}")
    return value


@control(
    id="PUENTE-SSH-01",
    title="SSH accepts public keys only (no password login)",
    impact=0.9,
    rationale="""Password logins are open to guessing and credential stuffing; Puente's operators and
    Ansible authenticate with keys, so any password path is attack surface only.""",
    refs={"cis": "5.1.19", "nist": ["IA-2", "IA-5", "AC-17"]},
    groups=["all"],
    remediation="""Run the common role (sshd_config.d/50-puente.conf); remove any drop-in that sorts
    before it.""",
)
@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("permitemptypasswords", "no"),
        ("authenticationmethods", "publickey"),
    ],
)
def test_ssh_key_only(host, keyword: str, expected: str):
    value = sshd_setting(host, keyword)
    assert value == expected, f"sshd {keyword} is {value!r}, expected {expected!r}"


@control(
    id="PUENTE-SSH-02",
    title="SSH refuses root logins",
    impact=0.8,
    rationale="""Operators log in as themselves and escalate with sudo, which leaves a trail naming the
    person; a root login names nobody.""",
    refs={"cis": "5.1.20", "nist": ["AC-6(2)", "IA-2"]},
    groups=["all"],
)
def test_ssh_no_root_login(host):
    value = sshd_setting(host, "permitrootlogin")
    assert value == "no", f"sshd permitrootlogin is {value!r}"


@control(
    id="PUENTE-SSH-03",
    title="SSH limits sessions, forwarding and per-user environment",
    impact=0.5,
    rationale="""Forwarding turns a login into a tunnel past the firewall; many authentication attempts per
    connection help guessing; a user-set environment can subvert the login shell.""",
    refs={"cis": "5.1.8, 5.1.10, 5.1.11, 5.1.13, 5.1.16, 5.1.21", "nist": ["CM-7", "AC-17", "AC-7"]},
    groups=["all"],
)
@pytest.mark.parametrize(
    ("keyword", "check", "wanted"),
    [
        ("x11forwarding", "eq", "no"),
        ("allowtcpforwarding", "eq", "no"),
        ("allowagentforwarding", "eq", "no"),
        ("permittunnel", "eq", "no"),
        ("hostbasedauthentication", "eq", "no"),
        ("ignorerhosts", "eq", "yes"),
        ("permituserenvironment", "eq", "no"),
        ("maxauthtries", "max", "4"),
        ("logingracetime", "max", "60"),
    ],
)
def test_ssh_session_limits(host, keyword: str, check: str, wanted: str):
    value = sshd_setting(host, keyword)
    if check == "eq":
        assert value == wanted, f"sshd {keyword} is {value!r}, expected {wanted!r}"
    else:
        assert value.isdigit() and 0 < int(value) <= int(wanted), (
            f"sshd {keyword} is {value!r}, want <= {wanted}"
        )


@control(
    id="PUENTE-SSH-04",
    title="sshd configuration is root's alone to change; host private keys root's alone to read",
    impact=0.5,
    rationale="""A writable sshd configuration lets anyone re-open password logins; a readable host
    private key lets anyone impersonate the server. (Debian ships sshd_config 0644 and it holds no
    secret, so Puente checks write access on configuration and any access on keys.)""",
    refs={"cis": "5.1.1, 5.1.2", "nist": ["AC-3", "SC-12"]},
    groups=["all"],
)
@pytest.mark.parametrize(
    ("what", "command"),
    [
        (
            "configuration writable by group/others or not root's",
            "find /etc/ssh/sshd_config /etc/ssh/sshd_config.d ( -perm /022 -o ! -user root ) -print",
        ),
        (
            "host private keys accessible by group/others or not root's",
            "find /etc/ssh -maxdepth 1 -name 'ssh_host_*_key' ( -perm /077 -o ! -user root ) -print",
        ),
    ],
)
def test_ssh_file_modes(host, what: str, command: str):
    offenders = host.check_output(command.replace("(", "\\(").replace(")", "\\)"))
    assert not offenders, f"{what}: {offenders}"
