"""Role `api`: Puente's reference API on the lab's api_nodes.

What the role promises, checked on the running nodes: the API, relay and worker run under systemd as the
unprivileged system user, with the hardening the units declare actually in force where the kernel
allows it; secrets in a root-only file; the code in an immutable release owned by root behind the
`current` symlink; the API listening on the node's service address only, reachable from the load
balancer and not from elsewhere; the reaper on a timer; /readyz answering 200.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

API_NODES = {"onprem-api1": "10.89.1.21", "onprem-api2": "10.89.1.22"}
EDGE = "onprem-edge1"
PORT = 8080
USER = "puente-api"
SERVICES = ["puente-api", "puente-api-relay", "puente-api-worker"]
# Declared in every unit of the role (systemctl show names and values).
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "UMask": "0077",
    "User": USER,
}

nodes = pytest.mark.parametrize("name", sorted(API_NODES))


def _main_pid(host, unit: str) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {unit}"))


def _journal_on_failure(host, unit: str) -> str:
    return host.run(f"journalctl -u {unit} -n 30 --no-pager").stdout


@nodes
@pytest.mark.parametrize("unit", SERVICES)
def test_service_running_as_the_api_user(node: Callable, name: str, unit: str) -> None:
    host = node(name)
    svc = host.service(unit)
    assert svc.is_running and svc.is_enabled, _journal_on_failure(host, unit)
    pid = _main_pid(host, unit)
    # every process of the unit (uvicorn's workers too) runs as the API's user
    users = host.check_output(f"ps -o user= --ppid {pid} -p {pid}").split()
    assert users and set(users) == {USER}, users


@nodes
@pytest.mark.parametrize("unit", SERVICES)
def test_unit_declares_the_hardening(node: Callable, name: str, unit: str) -> None:
    props = ",".join(HARDENING)
    out = node(name).check_output(f"systemctl show -p {props} {unit}")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got == HARDENING


@nodes
def test_hardening_in_force_on_the_api_process(node: Callable, name: str) -> None:
    host = node(name)
    status = host.file(f"/proc/{_main_pid(host, 'puente-api')}/status").content_string
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # filter mode: SystemCallFilter is loaded
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapBnd"], 16) == 0


@nodes
def test_code_is_read_only_for_the_api(node: Callable, name: str) -> None:
    host = node(name)
    current = host.file("/opt/puente-api/current")
    assert current.is_symlink
    release = host.file(current.linked_to)
    assert release.user == "root" and release.mode & 0o022 == 0
    assert host.file(f"{current.linked_to}/.complete").exists
    # the API's user cannot write to its code or its settings
    probe = host.run(f"runuser -u {USER} -- touch {current.linked_to}/venv/probe /etc/puente/probe")
    assert probe.rc != 0


@nodes
def test_secrets_root_only_and_runtime_settings_without_secrets(node: Callable, name: str) -> None:
    host = node(name)
    secrets = host.file("/etc/puente/api-secrets.env")
    assert (secrets.user, secrets.group, secrets.mode) == ("root", "root", 0o600)
    assert secrets.contains("^PUENTE_DATABASE_PASSWORD=.")
    assert secrets.contains("^PUENTE_BROKER_PASSWORD=.")
    runtime = host.file("/etc/puente/api.env")
    assert runtime.mode == 0o644
    settings = dict(line.split("=", 1) for line in runtime.content_string.splitlines() if "=" in line)
    # through this site's load balancer, the member's certificate verified against its address
    tls = "?sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt"
    assert settings["PUENTE_DATABASE_URL"] == f"postgresql://puente_api@10.89.1.10:5432/puente{tls}"
    assert settings["PUENTE_DATABASE_READ_URL"] == f"postgresql://puente_api@10.89.1.10:5433/puente{tls}"
    assert not runtime.contains("PASSWORD")


@nodes
def test_api_listens_on_the_service_address_only(node: Callable, name: str) -> None:
    host = node(name)
    listening = [s for s in host.check_output("ss -Hltn").splitlines() if s.split()[3].endswith(f":{PORT}")]
    assert [s.split()[3] for s in listening] == [f"{API_NODES[name]}:{PORT}"], listening


@nodes
def test_ready_through_the_load_balancers_network(node: Callable, name: str) -> None:
    url = f"http://{API_NODES[name]}:{PORT}/readyz"
    out = node(EDGE).run(f"curl -s -m 5 -w '\\n%{{http_code}}' {url}")
    body, _, code = out.stdout.rpartition("\n")
    assert code == "200", body
    assert json.loads(body)


@nodes
def test_api_port_closed_to_other_sources(name: str) -> None:
    # From the machine hosting the lab (not a load balancer): the node's firewall drops the connection.
    with pytest.raises(OSError), socket.create_connection((API_NODES[name], PORT), timeout=2):
        pass


@nodes
def test_reaper_timer_scheduled(node: Callable, name: str) -> None:
    host = node(name)
    assert host.service("puente-api-reaper.timer").is_running
    assert host.service("puente-api-reaper.timer").is_enabled
    # the one-shot service itself is only started by the timer
    assert host.check_output("systemctl show -p User --value puente-api-reaper.service") == USER
