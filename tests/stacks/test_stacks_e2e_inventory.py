"""Stack outputs -> inventory plugin -> playbook, end to end (issue 10, part 5).

The prod stack's program runs under the mock runtime (the session's `prod` recording); its outputs are what
`pulumi stack output --json --stack prod` prints, served by a stand-in `pulumi` on PATH to the SHIPPED
inventories/production/pulumi.yml, next to the filled-in production inventory of tests/check. On that
combined inventory: the cloud database members are in `postgresql`/`etcd` with what their roles need,
`puente check` passes, `ansible-playbook --syntax-check playbooks/site.yml` passes, and every variable of
every host renders — the variables as site.yml sees them (inventory, the defaults of the roles site.yml
applies to the host and of their dependencies: read by puente.check.inventory, so wherever the files live).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from puente_cloud import outputs
from stacks_helpers import REPO, fake_pulumi

from puente.pulumikit import Recording

FILLED = REPO / "tests" / "check" / "data" / "production-filled"
VAULT_PASSWORD = REPO / "tests" / "check" / "data" / "production-filled.vault-password"
# What `setup` reports on a Debian 12 node, for the few variables that read facts (ansible_facts[...]):
# the render has no hosts to gather from. The address is the host's own ansible_host.
FACTS = {
    "distribution": "Debian",
    "distribution_major_version": "12",
    "distribution_release": "bookworm",
    "distribution_version": "12.8",
    "os_family": "Debian",
    "architecture": "x86_64",
    "all_ipv6_addresses": [],
    "all_ipv4_addresses": [],
}


@pytest.fixture(scope="module")
def combined(prod: Recording, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The filled-in production inventory with the shipped pulumi.yml, and a PATH whose `pulumi` prints
    the prod stack's outputs."""
    root = tmp_path_factory.mktemp("e2e")
    inventory = root / "inventories" / "production"
    shutil.copytree(FILLED, inventory)
    shutil.copy(REPO / "inventories" / "production" / "pulumi.yml", inventory / "pulumi.yml")
    (root / "Pulumi.yaml").write_text("name: puente\n")  # project_dir: ../.. of the shipped config
    bin_dir = root / "bin"
    bin_dir.mkdir()
    fake_pulumi(bin_dir / "pulumi", prod, "prod")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    }
    yield {"inventory": inventory, "env": env, "root": root}


@pytest.fixture(scope="module")
def deployment(combined: dict[str, Any]) -> Any:
    """The combined inventory as ansible-playbook reads it for site.yml (puente check's loader)."""
    from puente.check.inventory import load, prepare_ansible

    saved = os.environ["PATH"]
    os.environ["PATH"] = combined["env"]["PATH"]
    try:
        prepare_ansible()
        return load([str(combined["inventory"])], vault_password_files=[str(VAULT_PASSWORD)])
    finally:
        os.environ["PATH"] = saved


def test_the_cloud_members_join_postgresql_and_etcd_with_what_their_roles_need(
    prod: Recording, deployment: Any
) -> None:
    from puente.check import playbooks
    from puente.check.inventory import ROLES_DIR

    assert deployment.problems == []
    nodes = prod.outputs[outputs.CLOUD_NODES]
    assert set(nodes) == {"cloud-db1", "cloud-db2"}
    assert set(deployment.members("postgresql")) >= {"cloud-db1", "cloud-db2"}
    etcd = deployment.members("etcd")
    assert "cloud-db1" in etcd and "cloud-db2" not in etcd
    assert len(etcd) == 3 and len({deployment.value(h, "puente_site") for h in etcd}) == 3  # a vote per site
    for name, node in nodes.items():
        host = deployment.hosts[name]
        assert host.vars["ansible_host"] == node["address"] and "cloud" in host.groups
        assert host.vars["puente_site"] == "cloud"
        assert {"postgresql", "etcd"} & set(host.roles) == set(node["groups"]) & {"postgresql", "etcd"}
        for role in host.roles:
            missing = [v for v in playbooks.role_contract(ROLES_DIR, role).required if v not in host.vars]
            assert missing == [], f"{name}: role {role} needs {missing}"
    assert deployment.hosts["cloud-db2"].vars["postgresql_patroni_tags"] == {"nosync": True}
    assert deployment.hosts["cloud-db1"].vars["puente_cloud_db_address"] == prod.outputs[outputs.DB_ADDRESS]


def _run(combined: dict[str, Any], *command: str) -> subprocess.CompletedProcess[str]:
    """A command on the combined inventory (with its vault password), in the e2e environment."""
    return subprocess.run(
        [*command, "-i", str(combined["inventory"]), "--vault-password-file", str(VAULT_PASSWORD)],
        cwd=REPO,
        env=combined["env"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_puente_check_passes_on_the_combined_inventory(combined: dict[str, Any]) -> None:
    proc = _run(combined, sys.executable, "-m", "puente.cli", "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the cloud members came through the plugin: three sites, the filled-in inventory's 8 hosts + 2
    assert "10 hosts, sites: onprem, cloud, witness" in proc.stdout


def test_site_yml_syntax_check_passes(combined: dict[str, Any]) -> None:
    proc = _run(
        combined,
        str(Path(sys.executable).parent / "ansible-playbook"),
        "playbooks/site.yml",
        "--syntax-check",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]: * Failed to parse" not in proc.stderr and "pulumi_stack:" not in proc.stderr


def _role_files(role: str, kind: str) -> list[Path]:
    """roles/<role>/<kind>/main.yml or main/*.yml: the files Ansible reads for a role's defaults or vars."""
    base = REPO / "roles" / role / kind
    return sorted([*base.glob("main.y*ml"), *base.glob("main/*.y*ml")])


def _load_trusted(loader: Any, files: list[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in files:  # as a play loads a role: values are trusted templates
        out.update(loader.load_from_file(str(path), cache="none", trusted_as_template=True) or {})
    return out


def test_every_variable_of_every_host_renders(combined: dict[str, Any], deployment: Any) -> None:
    """Every variable of every host rendered as a task of site.yml would see it: the inventory (the
    plugin's hosts included), the defaults of the roles site.yml applies to the host and of their
    dependencies (under them) and those roles' vars (over them, as references only: a role's internal
    vars may name facts its tasks set), `hostvars`, and the facts of a Debian 12 node. No undefined
    variable."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.plugins.loader import add_all_plugin_dirs
    from ansible.template import Templar, is_trusted_as_template, trust_as_template
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    from puente.check.values import MAGIC_VARS, walk_strings

    loader = deployment.loader  # basedir playbooks/, the vault password loaded
    saved = os.environ["PATH"]
    os.environ["PATH"] = combined["env"]["PATH"]
    try:
        inventory = InventoryManager(loader=loader, sources=[str(combined["inventory"])])
    finally:
        os.environ["PATH"] = saved
    manager = VariableManager(loader=loader, inventory=inventory)
    HostVars(inventory=inventory, variable_manager=manager, loader=loader)  # what a play's `hostvars` is
    for role in {r for h in deployment.hosts.values() for r in h.roles}:
        add_all_plugin_dirs(str(REPO / "roles" / role))  # role filters, as loading the role does

    failures = []
    rendered = templated = 0
    hosts = inventory.get_hosts("all")
    assert {h.name for h in hosts} == set(deployment.hosts)
    for host in hosts:
        roles = deployment.hosts[host.name].roles
        defaults = _load_trusted(loader, [f for r in roles for f in _role_files(r, "defaults")])
        role_vars = _load_trusted(loader, [f for r in roles for f in _role_files(r, "vars")])
        own = manager.get_vars(host=host, include_hostvars=True)
        address = own.get("ansible_host", host.name)
        facts = {
            **FACTS,
            "hostname": host.name.split(".")[0],
            "fqdn": host.name,
            "default_ipv4": {"address": address},
        }
        variables = {
            **{f"ansible_{k}": v for k, v in facts.items()},
            **defaults,
            **own,
            **role_vars,
            "ansible_facts": facts,
        }
        templar = Templar(loader=loader, variables=variables)
        for var in sorted({*defaults, *own} - set(role_vars) - MAGIC_VARS):
            value = variables[var]
            try:
                templar.template(value)
                rendered += 1
                # values read from files are trusted templates (rendered); the plugin's are data (not)
                templated += any("{{" in t and is_trusted_as_template(t) for _, t in walk_strings(value))
            except AnsibleError as exc:
                failures.append(f"{host.name} {var}: {str(exc).splitlines()[0]}")
    assert failures == [], "\n".join(failures)
    assert rendered > 50 * len(hosts)  # the whole set, role defaults included, not a few
    assert templated > 10 * len(hosts)  # and many of them are templates that were rendered
    with pytest.raises(AnsibleError, match="puente_no_such_variable"):  # an undefined one does fail
        templar.template(trust_as_template("{{ puente_no_such_variable }}"))


def test_every_member_lets_the_cloud_leader_endpoint_in(prod: Recording, deployment: Any) -> None:
    """The stack's NLB checks Patroni (8008) and carries the cloud API's sessions (5432) from the VPC's
    addresses: every member's firewall and the API role's pg_hba sources include the VPC, and only then."""
    vpc = prod.outputs[outputs.VPC_CIDR]
    for host in deployment.members("postgresql"):
        rules = deployment.template(host, deployment.value(host, "common_firewall_group_rules"))["postgresql"]
        assert {r["port"]: r["from"] for r in rules} == {
            5432: ["postgresql", "loadbalancers", "api_nodes", vpc],
            8008: ["postgresql", "loadbalancers", vpc],
        }, host
        users = deployment.template(host, deployment.value(host, "postgresql_users"))
        assert users[0]["connect_from"] == ["loadbalancers", "api_nodes", vpc], host


def test_without_the_stack_no_cloud_source_is_opened() -> None:
    from puente.check.inventory import load, prepare_ansible

    prepare_ansible()
    lab = load([str(REPO / "inventories" / "lab")])
    rules = lab.template("onprem-db1", lab.value("onprem-db1", "common_firewall_group_rules"))["postgresql"]
    assert {r["port"]: r["from"] for r in rules} == {
        5432: ["postgresql", "loadbalancers", "api_nodes"],
        8008: ["postgresql", "loadbalancers"],
    }


def test_every_member_certificate_names_the_host_the_cloud_api_verifies(
    prod: Recording, deployment: Any
) -> None:
    """sslmode=verify-full: the cloud API's URLs name the leader endpoint (the internal NLB's DNS name,
    dbAddress); the NLB passes TLS through, so every member's certificate (lab_ca default SANs) must
    name exactly that host, as it names each HAProxy's address for the on-prem API."""
    from urllib.parse import urlsplit

    from stacks_helpers import runtime_data

    data = runtime_data(prod)
    hosts = {urlsplit(data[k]).hostname for k in ("PUENTE_DATABASE_URL", "PUENTE_DATABASE_READ_URL")}
    assert hosts == {prod.outputs[outputs.DB_ADDRESS]}
    for host in deployment.members("postgresql"):
        names = deployment.template(host, deployment.value(host, "postgresql_tls_subject_alt_names"))
        assert f"DNS:{prod.outputs[outputs.DB_ADDRESS]}" in names, (host, names)
