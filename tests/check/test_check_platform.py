"""Rule 7: every host runs an OS its roles support — from cached facts, --facts, or the preflight play."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from check_helpers import REPO, copy_lab, edit_yaml, lab_hosts, run_check
from puente_test_support import load_module

from puente.check.playbooks import Platform
from puente.check.rules.platform import host_findings, supported

UBUNTU = {
    "distribution": "Ubuntu",
    "distribution_release": "jammy",
    "distribution_version": "22.04",
    "distribution_major_version": "22",
}
BOOKWORM = {
    "distribution": "Debian",
    "distribution_release": "bookworm",
    "distribution_version": "12.11",
    "distribution_major_version": "12",
}


def test_supported_platforms_come_from_the_roles_meta() -> None:
    by_role = supported(["common", "api"])
    assert by_role == {
        "common": [Platform("Debian", ("bookworm",))],
        "api": [Platform("Debian", ("bookworm",))],
    }


def test_an_unsupported_os_is_refused() -> None:
    (finding,) = host_findings("onprem-api1", UBUNTU, supported(["common", "api"]))
    assert str(finding) == (
        "[unsupported-os] host onprem-api1: it runs Ubuntu 22.04 (jammy); role(s) api, common support "
        "Debian 12 (bookworm) only (roles/*/meta/main.yml platforms). Fix: reinstall the host with "
        "Debian 12 (bookworm)."
    )
    assert host_findings("onprem-api1", BOOKWORM, supported(["common", "api"])) == []


def test_cached_facts_are_used(tmp_path: Path) -> None:
    """With a fact cache configured (here jsonfile), puente check reads each host's OS from it."""
    lab = copy_lab(tmp_path)
    env = {
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
    }
    hosts = sorted(lab_hosts(yaml.safe_load((lab / "hosts.yml").read_text())))
    facts = {h: (UBUNTU if h == "witness1" else BOOKWORM) for h in hosts}
    # written through Ansible's own fact cache API, as a playbook run would leave them
    script = (
        "import sys, json; from puente.check.inventory import prepare_ansible; prepare_ansible(); "
        "from ansible.vars.manager import VariableManager; vm = VariableManager(); "
        "[vm.set_host_facts(h, f) for h, f in json.loads(sys.argv[1]).items()]"
    )
    subprocess.run(
        [sys.executable, "-c", script, json.dumps(facts)], cwd=REPO, check=True, env={**os.environ, **env}
    )
    proc = run_check("-i", lab, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "[unsupported-os] host witness1" in proc.stdout
    assert "role(s) common, etcd, exporters, puente support Debian 12 (bookworm) only" in proc.stdout
    assert "OS not checked" not in proc.stdout


@pytest.mark.skipif(
    "VERSION_CODENAME=bookworm" not in Path("/etc/os-release").read_text(), reason="this machine is the host"
)
def test_facts_mode_prints_and_runs_setup(tmp_path: Path) -> None:
    """--facts on hosts reached with the local connection (this machine: read-only, no network, and no
    sudo: the inventory's ansible_become is for the nodes)."""
    lab = copy_lab(tmp_path)
    edit_yaml(
        lab / "hosts.yml",
        lambda d: [v.update(ansible_connection="local", ansible_become=False) for v in lab_hosts(d).values()],
    )
    proc = run_check("-i", lab, "--facts")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vault = f"--vault-password-file {lab}/vault-password.lab-only"
    command = f"ansible -i {lab} {vault} all -m ansible.builtin.setup -a 'gather_subset=!all,min'"
    assert command in proc.stderr  # printed before it runs
    assert "OS not checked" not in proc.stdout


def test_the_preflight_lookup_applies_the_same_rule() -> None:
    path = REPO / "playbooks" / "lookup_plugins" / "puente_check.py"
    module = load_module(path, "puente_check_lookup")
    platforms = {"common": [{"name": "Debian", "versions": ["bookworm"]}]}
    lookup = module.LookupModule()
    found = lookup.run(["platform"], {"inventory_hostname": "witness1"}, facts=UBUNTU, platforms=platforms)
    assert found == [
        str(f) for f in host_findings("witness1", UBUNTU, {"common": [Platform("Debian", ("bookworm",))]})
    ]
    assert (
        lookup.run(["platform"], {"inventory_hostname": "witness1"}, facts=BOOKWORM, platforms=platforms)
        == []
    )
