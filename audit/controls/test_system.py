"""Baseline of every node (role common): time, journal, file permissions, security updates.

CIS Debian Linux 12 Benchmark v1.1.0 references; NIST SP 800-53 rev. 5.
"""

from __future__ import annotations

from audit_policy import service_paths

from puente.audit import control


@control(
    id="PUENTE-TIME-01",
    title="The clock is kept in sync (systemd-timesyncd or chrony active)",
    impact=0.5,
    rationale="""Logs, TLS validity, backups and the failover drill's timings are only comparable across nodes
    and sites when clocks agree.""",
    refs={"cis": "2.3.1.1, 2.3.2.2", "nist": ["AU-8", "SC-45"]},
    groups=["all"],
)
def test_time_sync_active(host):
    services = {name: host.service(name) for name in ("systemd-timesyncd", "chrony")}
    running = [name for name, svc in services.items() if svc.is_running]
    virt = host.run("systemd-detect-virt").stdout.strip()
    assert running, f"no time sync daemon runs (virtualization: {virt})"


@control(
    id="PUENTE-LOG-01",
    title="The journal is kept on disk (survives a reboot)",
    impact=0.5,
    rationale="""A volatile journal loses the evidence of what happened before a crash or restart, exactly
    when it is needed.""",
    refs={"cis": "6.1.2.4", "nist": ["AU-9", "AU-11", "AU-4"]},
    groups=["all"],
)
def test_journal_persistent(host):
    config = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    storage = [line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("Storage=")]
    effective = storage[-1] if storage else "auto (default)"
    assert effective == "persistent", f"journald Storage is {effective}"
    journal = host.file("/var/log/journal")
    assert journal.is_directory
    written = host.run("find /var/log/journal -name '*.journal' -newermt '-1 day' -print -quit")
    assert written.stdout.strip(), "journald writes no file under /var/log/journal"


@control(
    id="PUENTE-FS-01",
    title="No world-writable files in the service paths",
    impact=0.7,
    rationale="""A file every user can write in a service's code, configuration or data lets any local account
    (or a compromised service) change what the service runs or stores.""",
    refs={"cis": "7.1.11", "nist": ["AC-3", "AC-6", "CM-5"]},
    groups=["all"],
)
def test_no_world_writable_in_service_paths(host, evidence):
    paths = [p for p in service_paths(host.groups) if host.raw.file(p).exists]
    evidence.record("service paths checked", paths)
    found = host.check_output("find " + " ".join(paths) + " -xdev ! -type l -perm -0002 -print")
    assert not found, f"world-writable: {found}"


@control(
    id="PUENTE-PKG-01",
    title="Security updates are configured to install automatically",
    impact=0.6,
    rationale="""Known vulnerabilities are fixed by Debian's security archive within days; unattended-upgrades
    applies them without waiting for an operator.""",
    refs={"cis": "1.2.2.1", "nist": ["SI-2", "SI-2(2)"]},
    groups=["all"],
)
def test_unattended_upgrades_enabled(host):
    assert host.package("unattended-upgrades").is_installed
    config = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config
    timer = host.service("apt-daily-upgrade.timer")
    assert timer.is_enabled, "apt-daily-upgrade.timer is not enabled: nothing runs unattended-upgrades"


@control(
    id="PUENTE-PKG-02",
    title="No pending security update",
    impact=0.7,
    rationale="""A pending update from the security archive is a published, fixed vulnerability still present
    on the node.""",
    refs={"cis": "1.2.2.1", "nist": ["SI-2", "RA-5"]},
    groups=["all"],
)
def test_no_pending_security_updates(host):
    lists = host.run("find /var/lib/apt/lists -name '*security*InRelease' -newermt '-7 days' -print")
    assert lists.stdout.strip(), "the security archive's package lists are missing or older than 7 days"
    simulated = host.check_output("apt-get -s -o Debug::NoLocking=1 dist-upgrade")
    pending = [line for line in simulated.splitlines() if line.startswith("Inst ") and "-security" in line]
    assert not pending, f"{len(pending)} security update(s) pending: " + ", ".join(
        line.split()[1] for line in pending
    )
