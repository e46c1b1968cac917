"""The lab is an instance of the production layout (issue 10): the same groups, the same variable files,
and differences only in inventories/lab/group_vars/lab/overrides.yml, each of a kind that must differ.
No podman here: Ansible reads both inventories as ansible-playbook would (puente.check.inventory)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from puente.check import inventory as check_inventory

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab"
PRODUCTION = REPO / "inventories" / "production"
OVERRIDES = LAB / "group_vars" / "lab" / "overrides.yml"
FILLED = REPO / "tests" / "check" / "data" / "production-filled"

# Every value the lab may set differently from production, and why. A new key in overrides.yml fails
# this test until it is listed here with one of these kinds - the review point for "lab convenience
# becoming a production difference".
KINDS = {"access", "address", "ca", "timing", "size", "platform"}
ALLOWED = {
    "ansible_ssh_private_key_file": "access",
    "ansible_host_key_checking": "access",
    "ansible_ssh_common_args": "access",
    "common_users": "access",
    "puente_environment": "access",
    "common_unattended_upgrades_timers_enabled": "access",
    "common_timesync_ntp_servers": "access",
    "moto_sqs_wheelhouse_dir": "access",
    "puente_dns_zone": "address",
    "puente_admin_networks": "address",
    "dns_client_cidrs": "address",
    "api_broker_url": "address",
    "gateway_tls_mode": "ca",
    "gateway_ca_dir": "ca",
    "powerdns_lua_ca_cert_file": "ca",
    "etcd_tls_mode": "ca",
    "etcd_ca_dir": "ca",
    "postgresql_tls_mode": "ca",
    "postgresql_ca_dir": "ca",
    "haproxy_postgresql_check_ca_src": "ca",
    "api_database_ca_src": "ca",
    "rabbitmq_tls_mode": "ca",
    "rabbitmq_ca_dir": "ca",
    "puente_broker_ca_src": "ca",
    "powerdns_failover_ttl": "timing",
    "vpn_dpd_delay": "timing",
    "vpn_retransmit_timeout": "timing",
    "vpn_retransmit_base": "timing",
    "vpn_retransmit_tries": "timing",
    "powerdns_failover_interval_seconds": "timing",
    "powerdns_failover_timeout_seconds": "timing",
    "haproxy_postgresql_check_fall": "timing",
    # the monitoring role's lab values (issue 12): its recording receiver, the lab CA, fast drills, small
    "monitoring_lab_receiver_enabled": "address",
    "monitoring_alertmanager_webhook_url": "address",
    "monitoring_ca_src": "ca",
    "monitoring_scrape_interval": "timing",
    "monitoring_scrape_timeout": "timing",
    "monitoring_evaluation_interval": "timing",
    "monitoring_alertmanager_group_wait": "timing",
    "monitoring_alertmanager_group_interval": "timing",
    "monitoring_rule_ranges": "timing",
    "monitoring_rule_holds": "timing",
    "monitoring_retention_time": "size",
    "monitoring_retention_size": "size",
    "monitoring_go_memory_limit": "size",
    "api_workers": "size",
    "gateway_rate_limit": "size",
    "gateway_rate_limit_burst": "size",
    "rabbitmq_vm_memory_high_watermark": "size",
    "rabbitmq_disk_free_limit": "size",
    "rabbitmq_nofile_limit": "size",
    "lab_s3_wheelhouse_dir": "access",
    "lab_s3_ca_dir": "ca",
    # the lab's S3 stand-ins (role lab_s3) as the repositories, their lab CA and lab vault secrets
    "pgbackrest_repositories": "address",
    "restore_drill_node_address": "address",
    "lab_s3_extra_clients": "address",
    # the site-to-site VPN (role vpn): what the stack's outputs give production, and user-space ESP
    "vpn_tunnels": "address",
    "vpn_local_cidrs": "address",
    "vpn_remote_cidrs": "address",
    "vpn_customer_gateway_address": "address",
    "vpn_local_address": "address",
    "vpn_kernel_libipsec": "platform",
}
# Per host by nature, not by environment.
HOST_SPECIFIC = {
    "ansible_host",
    "inventory_hostname",
    "inventory_hostname_short",
    "group_names",
    "groups",
    "hostvars",
}
# The groups only the lab has: `lab` (its overrides), `sqs` (the SQS stand-in of the cloud site) and
# `aws_vpn` (the stand-in for AWS's end of the VPN).
LAB_ONLY_GROUPS = {"lab", "sqs", "backup_s3", "aws_vpn"}
# Stand-ins for cloud or storage services production buys instead (role lab_s3: the backup repositories'
# S3 on the on-prem site's mq1 and the cloud's sqs1).
LAB_ONLY_ROLES = {"lab_s3"}


def _group_names(hosts_file: Path) -> set[str]:
    names: set[str] = set()

    def walk(groups: dict[str, Any]) -> None:
        for name, body in (groups or {}).items():
            names.add(name)
            walk((body or {}).get("children") or {})

    walk(yaml.safe_load(hosts_file.read_text())["all"]["children"])
    return names


def _counterpart(lab_host: str) -> str:
    """onprem-api1 -> api1.dc1.example.net, witness1 -> witness1.dc3.example.net (the production example)."""
    if lab_host.startswith("onprem-"):
        return f"{lab_host.removeprefix('onprem-')}.dc1.example.net"
    return f"{lab_host}.dc3.example.net"


def test_the_lab_reads_the_production_variable_files() -> None:
    """Every group_vars file of the production example is the lab's too (a symlink), and the lab has no
    other group_vars than its overrides and its vault."""
    production = {
        p.relative_to(PRODUCTION / "group_vars") for p in (PRODUCTION / "group_vars").rglob("*.yml")
    }
    lab = {p.relative_to(LAB / "group_vars") for p in (LAB / "group_vars").rglob("*.yml")}
    assert lab - production == {Path("lab/overrides.yml"), Path("lab/vault.yml")}
    assert production - lab == set()
    for rel in production:
        path = LAB / "group_vars" / rel
        assert path.is_symlink() or path.parent.is_symlink(), f"{path} must be a link to production's"
        assert path.resolve() == (PRODUCTION / "group_vars" / rel).resolve()


def test_overrides_are_only_of_the_listed_kinds() -> None:
    overrides = yaml.safe_load(OVERRIDES.read_text())
    assert set(ALLOWED.values()) <= KINDS
    unlisted = sorted(set(overrides) - set(ALLOWED))
    assert not unlisted, f"overrides.yml sets {unlisted}: list each in ALLOWED with its kind, or drop it"
    assert sorted(set(ALLOWED) - set(overrides)) == [], "ALLOWED lists keys overrides.yml no longer sets"


def test_the_lab_has_the_production_groups() -> None:
    assert _group_names(LAB / "hosts.yml") - LAB_ONLY_GROUPS == _group_names(PRODUCTION / "hosts.yml")
    lab = yaml.safe_load((LAB / "hosts.yml").read_text())["all"]["children"]
    assert lab["lab"]["vars"]["ansible_group_priority"] > 1, "the overrides must outrank the other groups"


@pytest.fixture(scope="module")
def both() -> tuple[check_inventory.Deployment, check_inventory.Deployment]:
    check_inventory.prepare_ansible()
    lab = check_inventory.load([str(LAB)], vault_password_files=[str(LAB / "vault-password.lab-only")])
    production = check_inventory.load([str(PRODUCTION)])
    assert not lab.problems and not production.problems
    return lab, production


def test_nothing_else_differs_host_by_host(both: tuple[Any, Any]) -> None:
    """Each on-prem and witness node of the lab resolves every variable exactly as its production twin,
    except the listed overrides (the cloud site's nodes come from the stack in production)."""
    lab, production = both
    compared = 0
    for name, host in sorted(lab.hosts.items()):
        twin_name = _counterpart(name)
        if twin_name not in production.hosts:
            continue
        twin = production.hosts[twin_name]
        assert host.groups - LAB_ONLY_GROUPS == twin.groups, name
        assert [r for r in host.roles if r not in LAB_ONLY_ROLES] == list(twin.roles), name
        keys = (set(host.vars) | set(twin.vars)) - set(ALLOWED) - HOST_SPECIFIC
        keys = {
            k for k in keys if not k.startswith(("vault_", "ansible_", "lab_", "inventory_", "playbook_"))
        }
        differ = sorted(k for k in keys if host.vars.get(k) != twin.vars.get(k))
        assert not differ, f"{name} differs from {twin_name} in {differ}"
        compared += 1
    assert compared == 9  # edge1, api1, api2, db1, db2, mq1, dns1, vpn1, witness1


@pytest.mark.parametrize(
    ("file", "variable", "value", "host"),
    [
        ("gateways.yml", "gateway_server_name", "shipping.corp.internal", "edge1.dc1.corp.internal"),
        ("loadbalancers.yml", "haproxy_api_check_path", "/readyz", "edge1.dc1.corp.internal"),
        ("postgresql.yml", "postgresql_parameters", {"max_connections": 500}, "db1.dc1.corp.internal"),
        ("rabbitmq.yml", "rabbitmq_puente_max_deliveries", 9, "mq1.dc1.corp.internal"),
        ("all/main.yml", "puente_api_port", 9090, "api1.dc1.corp.internal"),
    ],
)
def test_a_value_set_in_the_inventory_wins(
    tmp_path: Path, file: str, variable: str, value: Any, host: str
) -> None:
    """What an operator writes in their inventory reaches the roles: no playbook-level file outranks it."""
    inv = tmp_path / "production"
    shutil.copytree(FILLED, inv)
    shutil.copy(FILLED.parent / "production-filled-outputs.json", tmp_path)
    path = inv / "group_vars" / file
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    path.write_text(yaml.safe_dump({**(data or {}), variable: value}))
    check_inventory.prepare_ansible()
    d = check_inventory.load(
        [str(inv)], vault_password_files=[str(FILLED.parent / "production-filled.vault-password")]
    )
    assert not d.problems, d.problems
    assert d.template(host, d.value(host, variable)) == value
    if variable == "puente_api_port":  # and what derives from it follows
        assert d.template(host, d.value(host, "api_port")) == 9090
