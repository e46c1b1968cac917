"""Role `common` on every lab node: what it promises, checked on the running nodes.

sshd refuses passwords and root, the journal persists, the clock zone is set, the firewall drops
inbound traffic except declared ports from declared peers (checked with real connections), security
updates are configured, and bad input stops the play before any change.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from puente.lab import inventory
from puente.shell import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

NODES = sorted(inventory.load().nodes)
# The node the bad-input runs target: a quiet one (no client traffic), present in every lab layout.
TARGET = inventory.load().in_group("dns")[0].name
ADMIN_SOURCE = "10.89.1.1"  # the host, on the on-prem bridge (puente_admin_networks in the lab)
PROBE = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close(); print('open')\n"
    "except socket.timeout: print('dropped')\n"
    "except ConnectionRefusedError: print('refused')\n"
)


def _sshd_effective(host) -> dict[str, str]:
    out = host.check_output("sshd -T -C user=puente,host=x,addr=%s", ADMIN_SOURCE)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


@pytest.mark.parametrize("name", NODES)
def test_sshd_is_key_only_without_root(node, name) -> None:
    host = node(name)
    effective = _sshd_effective(host)
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["permitrootlogin"] == "no"
    assert effective["pubkeyauthentication"] == "yes"
    assert effective["authenticationmethods"] == "publickey"
    assert effective["allowtcpforwarding"] == "no"
    drop_in = host.file("/etc/ssh/sshd_config.d/50-puente.conf")
    assert (drop_in.user, drop_in.group, drop_in.mode) == ("root", "root", 0o600)
    assert host.service("ssh").is_running and host.service("ssh").is_enabled


@pytest.mark.parametrize("name", NODES)
def test_operator_account_has_exactly_the_lab_key_and_sudo(node, name) -> None:
    host = node(name)
    keys = host.file("/home/puente/.ssh/authorized_keys")
    assert (keys.user, keys.mode) == ("puente", 0o600)
    lab_key = (ROOT / ".cache/lab/ssh/id_ed25519.pub").read_text().strip()
    assert keys.content_string.strip().splitlines() == [lab_key]
    sudoers = host.file("/etc/sudoers.d/puente")
    assert (sudoers.user, sudoers.mode) == ("root", 0o440)
    assert host.run("visudo -cf /etc/sudoers.d/puente").rc == 0


@pytest.mark.parametrize("name", NODES)
def test_password_login_is_refused_by_the_running_sshd(lab, name) -> None:
    """The daemon, not only its files: a client offering only a password is told "publickey" only.
    (A reload lost to a failed run once left sshd accepting passwords while `sshd -T` said no.)"""
    target = str(lab.nodes[name].ip)
    proc = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
         f"puente@{target}", "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 255
    assert "Permission denied (publickey)" in proc.stderr


@pytest.mark.parametrize("name", NODES)
def test_journal_is_persistent(node, name) -> None:
    host = node(name)
    assert "Storage=persistent" in host.file("/etc/systemd/journald.conf.d/50-puente.conf").content_string
    journal = host.file("/var/log/journal")
    assert journal.is_directory and journal.group == "systemd-journal"
    # journald really writes there (not only to /run/log/journal)
    assert host.check_output("find /var/log/journal -name 'system*.journal' | head -1")


@pytest.mark.parametrize("name", NODES)
def test_time_zone_and_timesyncd(node, name) -> None:
    host = node(name)
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Etc/UTC"
    assert host.file("/etc/timezone").content_string == "Etc/UTC\n"
    assert host.service("systemd-timesyncd").is_enabled
    assert host.file("/etc/systemd/timesyncd.conf.d/50-puente.conf").exists


@pytest.mark.parametrize("name", NODES)
def test_security_updates_configured_timers_off_in_the_lab(node, name) -> None:
    host = node(name)
    assert host.package("unattended-upgrades").is_installed
    periodic = host.file("/etc/apt/apt.conf.d/20auto-upgrades").content_string
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    origins = host.file("/etc/apt/apt.conf.d/52puente-unattended-upgrades").content_string
    assert "-security,label=Debian-Security" in origins
    # the lab keeps the timers off (common_unattended_upgrades_timers_enabled: false)
    assert not host.service("apt-daily-upgrade.timer").is_enabled


@pytest.mark.parametrize("name", NODES)
def test_firewall_is_default_deny_and_loaded(node, name) -> None:
    host = node(name)
    assert host.service("nftables").is_enabled
    ruleset = json.loads(host.check_output("nft -j list chain inet puente_filter input"))["nftables"]
    chain = next(item["chain"] for item in ruleset if "chain" in item)
    assert chain["policy"] == "drop"
    conf = host.file("/etc/nftables.conf")
    assert (conf.user, conf.mode) == ("root", 0o600)


def _probe(node, src: str, dst_ip: str, port: int) -> str:
    return node(src).check_output("python3 -c %s %s %s", PROBE, dst_ip, str(port)).strip()


def test_ssh_is_reachable_from_the_admin_network_only(lab, node) -> None:
    """The host (admin network) reaches sshd; another node of the same site is dropped."""
    api, db = lab.in_group("api_nodes")[0], lab.in_group("postgresql")[0]
    assert _probe(node, api.name, str(db.ip), 22) == "dropped"
    proc = subprocess.run(
        ["python3", "-c", PROBE, str(db.ip), "22"], capture_output=True, text=True, timeout=10, check=True
    )
    assert proc.stdout.strip() == "open"


def test_undeclared_port_is_dropped_even_when_a_service_listens(lab, node) -> None:
    """A listener the firewall does not declare stays unreachable from a peer."""
    api, mq = lab.in_group("api_nodes")[0], lab.in_group("rabbitmq")[0]
    listener = node(mq.name).run("systemd-run --unit=puente-test-listener python3 -m http.server 18080")
    assert listener.rc == 0, listener.stderr
    try:
        node(mq.name).run("sleep 1")
        assert _probe(node, mq.name, "127.0.0.1", 18080) == "open"
        assert _probe(node, api.name, str(mq.ip), 18080) == "dropped"
    finally:
        node(mq.name).run("systemctl stop puente-test-listener")


# --- bad input stops the play before any change ----------------------------------------------------


def _bad_run(run_playbook, name: str, extra_vars: dict) -> tuple[object, str]:
    host = TARGET
    before = subprocess.run(
        ["podman", "exec", host, "sha256sum", "/etc/nftables.conf", "/etc/ssh/sshd_config.d/50-puente.conf"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    recap = run_playbook(name, "-e", json.dumps(extra_vars), limit=host)
    after = subprocess.run(
        ["podman", "exec", host, "sha256sum", "/etc/nftables.conf", "/etc/ssh/sshd_config.d/50-puente.conf"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if before != after:
        # The play broke its promise: put the node back (podman exec is not behind its firewall) so the
        # rest of the session still reaches it, then fail.
        subprocess.run(
            ["podman", "exec", host, "nft", "delete", "table", "inet", "puente_filter"], check=False
        )
        run_playbook(name, limit=host)
    assert before == after, "a failed run changed files"
    assert recap.returncode != 0
    assert recap[host]["failed"] == 1 and recap[host]["changed"] == 0, recap
    return recap, recap.output


def test_wrong_type_stops_with_the_variable_named(run_playbook) -> None:
    _, out = _bad_run(run_playbook, "common.yml", {"common_sshd_port": "twenty-two"})
    assert "common_sshd_port" in out


def test_unknown_firewall_peer_stops_with_the_entry_named(run_playbook) -> None:
    bad = {"common_firewall_allowed_test": [{"port": 9999, "proto": "tcp", "from": ["no_such_group"]}]}
    _, out = _bad_run(run_playbook, "common.yml", bad)
    assert "no_such_group" in out


def test_firewall_that_would_cut_the_operator_is_refused(run_playbook) -> None:
    _, out = _bad_run(run_playbook, "common.yml", {"puente_admin_networks": ["192.0.2.0/28"]})
    assert "would cut it" in out
