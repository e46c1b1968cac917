"""The roles' apt tasks run only for what is missing (playbooks/preflight.yml reads the installed packages
with playbooks/library/dpkg_facts.py): they match what ansible.builtin.package_facts lists, and a package
removed from a node is installed again by the next run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

NODE = "witness1"  # runs common, etcd and the exporters only
PACKAGE = "prometheus-node-exporter"  # role exporters, on every node
REPO = Path(__file__).resolve().parents[2]
INVENTORY = "inventories/lab"
VAULT_PASSWORD_FILE = "inventories/lab/vault-password.lab-only"


def facts(module: str) -> dict[str, str]:
    """NODE's installed packages from MODULE (name -> version), by an ad-hoc command."""
    argv = [
        str(REPO / ".venv/bin/ansible"), NODE, "-i", INVENTORY, "--vault-password-file", VAULT_PASSWORD_FILE,
        "-m", module, "--one-line",
    ]  # fmt: skip
    env = {**os.environ, "ANSIBLE_LIBRARY": str(REPO / "playbooks/library")}
    print("+", " ".join(argv), file=sys.stderr, flush=True)
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    answer = json.loads(proc.stdout.split(" => ", 1)[1])["ansible_facts"]
    if "installed_packages" in answer:  # dpkg_facts
        return answer["installed_packages"]
    return {name: versions[0]["version"] for name, versions in answer["packages"].items()}  # package_facts


def test_dpkg_facts_match_package_facts() -> None:
    from_dpkg = facts("dpkg_facts")
    assert PACKAGE in from_dpkg
    assert from_dpkg == facts("ansible.builtin.package_facts")


def test_a_removed_package_is_installed_again(node, run_playbook) -> None:
    host = node(NODE)
    host.run(f"apt-get remove --yes {PACKAGE}")
    assert not host.package(PACKAGE).is_installed
    recap = run_playbook("preflight.yml", "playbooks/monitoring.yml", limit=NODE)
    assert recap.returncode == 0, recap.output[-6000:]
    assert recap[NODE]["changed"] > 0
    assert host.package(PACKAGE).is_installed
    assert host.service(PACKAGE).is_running
