"""plugins/inventory/pulumi_stack.py: the stack's outputs become Ansible hosts, groups and variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from puente_cloud import outputs
from stacks_helpers import REPO, ansible_inventory, cli_outputs, fake_pulumi, untagged

from puente.pulumikit import Recording


def _config(tmp_path: Path, **options: Any) -> Path:
    path = tmp_path / "pulumi.yml"
    path.write_text(yaml.safe_dump({"plugin": "pulumi_stack", **options}))
    return path


def _inventory(source: Path) -> Any:
    """Run the plugin in-process on `source`, as ansible-inventory's `auto` plugin would."""
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import inventory_loader

    inventory_loader.add_directory(str(REPO / "plugins" / "inventory"))
    inventory = InventoryData()
    inventory_loader.get("pulumi_stack").parse(inventory, DataLoader(), str(source), cache=False)
    return inventory


def test_ansible_inventory_cli_reads_an_exported_stack(geo: Recording, tmp_path: Path) -> None:
    (tmp_path / "outputs.json").write_text(json.dumps(cli_outputs(geo)))
    source = _config(tmp_path, stack_output_file="outputs.json")
    done = ansible_inventory(source, "--export")
    assert done.returncode == 0, done.stderr
    listing = untagged(json.loads(done.stdout))
    assert sorted(listing["cloud"]["hosts"]) == ["cloud-db1", "cloud-db2"]
    assert sorted(listing["postgresql"]["hosts"]) == ["cloud-db1", "cloud-db2"]
    assert listing["etcd"]["hosts"] == ["cloud-db1"]
    hostvars = listing["_meta"]["hostvars"]
    assert hostvars["cloud-db2"]["postgresql_patroni_tags"] == {"nosync": True}
    assert "postgresql_patroni_tags" not in hostvars["cloud-db1"]
    nodes = geo.outputs[outputs.CLOUD_NODES]
    assert hostvars["cloud-db1"]["ansible_host"] == nodes["cloud-db1"]["address"]
    assert hostvars["cloud-db1"]["puente_site"] == "cloud"
    all_vars = listing["all"]["vars"]
    assert all_vars["puente_cloud_alb_dns_name"] == geo.outputs[outputs.ALB_DNS_NAME]
    assert all_vars["puente_cloud_vpn_tunnel_addresses"] == geo.outputs[outputs.VPN_TUNNEL_ADDRESSES]
    assert all_vars["puente_cloud_db_endpoint"] == geo.outputs[outputs.DB_ENDPOINT]
    assert all_vars["puente_cloud_queue_url"] == geo.outputs[outputs.QUEUE_URL]
    assert "puente_cloud_kubeconfig" not in all_vars  # a secret: never copied into the inventory


def test_plugin_runs_the_pulumi_cli_for_the_stack(cloud_only: Recording, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: puente\n")
    fake = fake_pulumi(tmp_path / "pulumi", cloud_only, "dev")
    # the stand-in must run in the project directory
    fake.write_text(
        fake.read_text().replace(
            "args = sys.argv[1:]", "import os\nassert os.path.exists('Pulumi.yaml')\nargs = sys.argv[1:]"
        )
    )
    manager = _inventory(_config(tmp_path, stack="dev", project_dir="project", pulumi_command=str(fake)))
    assert manager.groups["cloud"].get_hosts() == []  # RDS mode: no cloud VMs to configure
    variables = manager.groups["all"].get_vars()
    assert variables["puente_cloud_queue_url"] == cloud_only.outputs[outputs.QUEUE_URL]
    assert variables["puente_cloud_db_mode"] == "rds"


@pytest.mark.parametrize(
    ("content", "options", "expected"),
    [
        (None, {"stack_output_file": "missing.json"}, "cannot read stack outputs"),
        ({"albDnsName": "x"}, {"stack_output_file": "outputs.json"}, "stack outputs lack cloudNodes"),
        (None, {}, "set `stack`"),
        (None, {"stack": "dev", "pulumi_command": "/nonexistent/pulumi"}, "cannot run /nonexistent/pulumi"),
    ],
)
def test_plugin_errors_are_clear(
    tmp_path: Path, content: Any, options: dict[str, Any], expected: str
) -> None:
    from ansible.errors import AnsibleError

    if content is not None:
        (tmp_path / "outputs.json").write_text(json.dumps(content))
    with pytest.raises(AnsibleError, match=expected):
        _inventory(_config(tmp_path, **options))


def test_an_unavailable_cli_can_be_skipped_with_a_warning(tmp_path: Path) -> None:
    source = _config(tmp_path, stack="prod", pulumi_command="/nonexistent/pulumi", skip_if_unavailable=True)
    inventory = _inventory(source)
    assert inventory.groups["cloud"].get_hosts() == []
    assert not any(k.startswith("puente_cloud_") for k in inventory.groups["all"].get_vars())
    # Wrong outputs are never skipped: they mean a broken stack, not a missing tool.
    (tmp_path / "outputs.json").write_text(json.dumps({"albDnsName": "x"}))
    from ansible.errors import AnsibleError

    with pytest.raises(AnsibleError, match="stack outputs lack"):
        _inventory(_config(tmp_path, stack_output_file="outputs.json", skip_if_unavailable=True))


def test_production_inventory_still_loads_without_the_pulumi_cli() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", "inventories/production", "--graph"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": str(Path(sys.executable).parent)},
    )  # no `pulumi` on this PATH
    assert done.returncode == 0, done.stderr
    assert "@onprem:" in done.stdout
    assert done.stderr.count("[WARNING]") == 1 and "no cloud hosts" in done.stderr


def test_example_configs_name_the_plugin() -> None:
    configs = sorted(REPO.glob("inventories/*/pulumi.yml"))
    assert configs, "no example config"
    for path in configs:
        assert yaml.safe_load(path.read_text())["plugin"] == "pulumi_stack"
