"""`puente lab` against a two-site test lab of its own (inventory and key in a temp folder, networks
puente-labtest 10.89.240.0/24 and puente-labtestb 10.89.241.0/24), so the shared lab's nodes are never
touched: up twice, a stopped node, a node left by a killed session, routing between sites, status, scale,
a malformed inventory refused before podman is touched, and down.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from puente.shell import ROOT

pytestmark = [pytest.mark.lab]

CONTAINERS_CONF = str(ROOT / "lab" / "containers.conf")
HOSTS = """\
all:
  children:
    labtest:
      vars: {lab_network: puente-labtest, lab_subnet: 10.89.240.0/24}
      hosts:
        labtest-api1: {ansible_host: 10.89.240.21}
    labtestb:
      vars: {lab_network: puente-labtestb, lab_subnet: 10.89.241.0/24}
      hosts:
        labtestb-node1: {ansible_host: 10.89.241.10}
    api_nodes:
      hosts:
        labtest-api1:
"""


class Lab:
    def __init__(self, inventory: Path, cache: Path) -> None:
        self.inventory, self.cache = inventory, cache
        self.env = {
            **os.environ,
            "PUENTE_LAB_INVENTORY": str(inventory),
            "PUENTE_LAB_CACHE": str(cache),
            "CONTAINERS_CONF": CONTAINERS_CONF,
        }

    def puente(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(ROOT / ".venv/bin/puente"), "lab", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"puente lab {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def podman(self, *args: str) -> str:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout.strip()

    def container_ids(self) -> dict[str, str]:
        out = self.podman("ps", "--all", "--filter", "label=io.puente.lab", "--format", "{{.Names}} {{.ID}}")
        return dict(line.split() for line in out.splitlines() if line.strip())


@pytest.fixture(scope="module")
def testlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    inventory = tmp_path_factory.mktemp("inventory")
    (inventory / "hosts.yml").write_text(HOSTS)
    (inventory / "vault-password.lab-only").write_text("test-only\n")
    lab = Lab(inventory, tmp_path_factory.mktemp("cache"))
    yield lab
    lab.puente("down", check=False)


def test_malformed_inventory_fails_before_podman_is_touched(testlab: Lab, tmp_path: Path) -> None:
    bad = tmp_path / "inventory"
    bad.mkdir()
    (bad / "hosts.yml").write_text(HOSTS.replace("10.89.240.21", "10.89.242.21"))
    (bad / "vault-password.lab-only").write_text("test-only\n")
    before = (testlab.container_ids(), testlab.podman("network", "ls", "--format", "{{.Name}}"))
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/puente"), "lab", "up", "--no-converge"],
        cwd=ROOT, env={**testlab.env, "PUENTE_LAB_INVENTORY": str(bad)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "labtest-api1" in proc.stderr and "10.89.242.21 is not a usable node address" in proc.stderr
    assert "podman run" not in proc.stderr + proc.stdout
    after = (testlab.container_ids(), testlab.podman("network", "ls", "--format", "{{.Name}}"))
    assert before == after


def test_up_then_up_again_reuses_the_running_node(testlab: Lab) -> None:
    first = testlab.puente("up", "--no-converge")
    assert "podman run" in first.stderr, "the first up must create the node (and print the command)"
    ids = testlab.container_ids()
    second = testlab.puente("up", "--no-converge")
    assert "node labtest-api1 10.89.240.21 is running" in second.stdout
    assert "podman run" not in second.stderr
    assert testlab.container_ids()["labtest-api1"] == ids["labtest-api1"]


def test_node_answers_ssh_with_the_lab_key_and_has_its_fixed_mac(testlab: Lab) -> None:
    key = testlab.cache / "ssh" / "id_ed25519"
    out = subprocess.run(
        ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "puente@10.89.240.21",
         "hostname; sudo -n true && echo sudo-ok; cat /sys/class/net/eth0/address;"
         " systemctl is-system-running"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert out[:3] == ["labtest-api1", "sudo-ok", "02:00:0a:59:f0:15"]
    assert out[3] in ("running", "degraded")


def test_sites_reach_each_other_with_their_real_addresses(testlab: Lab) -> None:
    """The host routes between sites without masquerading: a peer's firewall rule can name its address."""
    testlab.podman(
        "exec", "--detach", "labtestb-node1", "python3", "-c",
        "import socket, time; s = socket.create_connection(('10.89.240.21', 22)); time.sleep(8)",
    )  # fmt: skip
    seen = ""
    for _ in range(20):
        seen = testlab.podman("exec", "labtest-api1", "ss", "-Htn", "state", "established", "( sport = :22 )")
        if seen:
            break
        time.sleep(0.3)
    assert "10.89.241.10:" in seen, seen


def test_stopped_node_is_started_not_recreated(testlab: Lab) -> None:
    ids = testlab.container_ids()
    testlab.podman("stop", "--time", "5", "labtest-api1")
    testlab.puente("up", "--no-converge")
    assert testlab.container_ids()["labtest-api1"] == ids["labtest-api1"]
    assert testlab.podman("inspect", "--format", "{{.State.Running}}", "labtest-api1") == "true"


def test_node_left_behind_by_a_killed_session_is_recreated(testlab: Lab) -> None:
    """CI runs right after a session is ended: conmon and the node's init are gone while podman's record
    still says "running". `lab up` must notice and start the node afresh, not wait for SSH forever."""
    pids = testlab.podman(
        "inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}}", "labtest-api1"
    ).split()
    subprocess.run(["kill", "-9", *pids], check=True)
    proc = testlab.puente("up", "--no-converge")
    assert "not alive: recreating" in proc.stdout
    assert testlab.podman("inspect", "--format", "{{.State.Running}}", "labtest-api1") == "true"
    assert "2/2 nodes answer" in proc.stderr


def test_status_shows_node_ip_state_and_systemd(testlab: Lab) -> None:
    report = json.loads(testlab.puente("status", "--json").stdout)
    node = next(n for n in report["nodes"] if n["name"] == "labtest-api1")
    assert (node["name"], node["ip"], node["state"]) == ("labtest-api1", "10.89.240.21", "running")
    assert node["systemd"] in ("running", "degraded", "starting")
    assert "22" in node["listening_tcp"]
    table = testlab.puente("status").stdout
    assert "labtest-api1" in table and "10.89.240.21" in table


def test_scale_adds_then_removes_an_api_node(testlab: Lab) -> None:
    scale_file = testlab.inventory / "scale.yml"
    testlab.puente("scale", "api=2", "--site", "labtest", "--no-converge")
    assert "labtest-api2" in testlab.container_ids()
    assert "10.89.240.22" in scale_file.read_text()
    report = json.loads(testlab.puente("status", "--json").stdout)
    assert {n["name"]: n["ip"] for n in report["nodes"] if n["site"] == "labtest"} == {
        "labtest-api1": "10.89.240.21",
        "labtest-api2": "10.89.240.22",
    }
    testlab.puente("scale", "api=1", "--site", "labtest", "--no-converge")
    assert "labtest-api2" not in testlab.container_ids()
    assert not scale_file.exists()


def test_scale_below_the_inventory_baseline_is_refused(testlab: Lab) -> None:
    proc = testlab.puente("scale", "api=0", "--site", "labtest", "--no-converge", check=False)
    assert proc.returncode != 0 and "hosts.yml" in proc.stderr


def test_down_removes_node_network_and_key_and_nothing_else(testlab: Lab) -> None:
    proc = testlab.puente("down")
    assert not any(n.startswith("labtest") for n in testlab.container_ids())
    networks = testlab.podman("network", "ls", "--format", "{{.Name}}").split()
    assert "puente-labtest" not in networks and "puente-labtestb" not in networks
    assert not (testlab.cache / "ssh" / "id_ed25519").exists()
    # Only this lab's node and network were named to podman (the shared lab is left alone; other
    # sessions may be recreating their own nodes meanwhile, so compare commands, not container lists).
    removals = [line for line in proc.stderr.splitlines() if " podman rm " in line or " network rm " in line]
    assert removals, proc.stderr
    for line in removals:
        names = line.split(" rm ", 1)[1].split()
        assert all(n.startswith(("labtest", "puente-labtest", "--", "5")) for n in names), line
