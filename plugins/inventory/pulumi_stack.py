"""Ansible inventory plugin `pulumi_stack`: the cloud site's addresses straight from a Pulumi stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: pulumi_stack
short_description: Cloud nodes and endpoints from a Pulumi stack's outputs
description:
  - Reads the outputs of a stack of Puente's Pulumi program (C(stacks/)), either by running
    C(pulumi stack output --json) or from a JSON file exported with that command, so operators never
    copy cloud addresses by hand.
  - Hosts come from the C(cloudNodes) output (node name mapped to its address, groups and host
    variables); they join the site group (C(cloud) by default) and the groups the stack gives them
    (e.g. C(postgresql) and, for the first member, C(etcd)), with C(ansible_host) set to their private
    address (reached through the VPN) and the stack's C(vars) (e.g. C(postgresql_patroni_tags)).
  - Every other non-secret output becomes a variable of group C(all) named C(puente_cloud_<output in
    snake_case>), e.g. C(puente_cloud_alb_dns_name), C(puente_cloud_vpn_tunnel_addresses),
    C(puente_cloud_db_endpoint), C(puente_cloud_queue_url).
  - For a C(vpn) role on the on-prem side, the site-to-site VPN's outputs also become C(vpn_tunnels)
    (one entry per tunnel, in order, with C(outside_address), C(inside_cidr), C(onprem_inside_address),
    C(aws_inside_address), the IPsec options such as C(ike_versions), C(phase1_encryption_algorithms),
    C(phase2_dh_group_numbers), C(dpd_timeout_seconds), C(rekey_margin_time_seconds), and C(psk) when
    the secret C(vpnPresharedKeys) was read), C(vpn_remote_cidrs) (the VPC) and C(vpn_local_cidrs) (the
    on-prem networks), variables of group C(all).
  - Secret outputs are never copied, except those listed in I(secret_outputs) (by default only the VPN's
    pre-shared keys), read in plain with C(pulumi stack output NAME --json --show-secrets) or from
    I(secret_output_file). Such a value is in the inventory in plain text (C(ansible-inventory --list)
    prints it), so roles using it set C(no_log).
  - The config file must be named C(pulumi.yml) or C(pulumi.yaml) (or end with it).
options:
  plugin:
    description: Marks this file as a config of this plugin.
    required: true
    choices: [pulumi_stack]
  stack:
    description: Stack to read with the Pulumi CLI (e.g. C(prod)). Ignored when I(stack_output_file) is set.
    type: str
  project_dir:
    description: Directory holding C(Pulumi.yaml), relative to this config file.
    type: str
    default: ../..
  stack_output_file:
    description:
      - JSON written by C(pulumi stack output --json --stack STACK > FILE), relative to this config file.
      - Lets machines without the Pulumi CLI or backend credentials use the inventory.
    type: str
  pulumi_command:
    description: The Pulumi CLI executable.
    type: str
    default: pulumi
  site_group:
    description: Group every cloud host joins.
    type: str
    default: cloud
  secret_outputs:
    description:
      - Secret outputs to read in plain (each becomes C(puente_cloud_<output in snake_case>) too).
      - C(kubeconfig) is refused. Only outputs the stack has are read. When the CLI cannot show one
        (e.g. no passphrase for the stack's secrets), a warning says so and the rest is loaded.
    type: list
    elements: str
    default: [vpnPresharedKeys]
  secret_output_file:
    description:
      - With I(stack_output_file), the file holding the secret outputs, relative to this config file, as
        a JSON or YAML object of output names and values (e.g. C(vpnPresharedKeys) and what
        C(pulumi stack output vpnPresharedKeys --json --show-secrets) prints), best encrypted with
        C(ansible-vault encrypt) (Ansible decrypts it with the vault password it was given).
      - Without it, an exported stack gives no secrets (C(vpn_tunnels) then has no C(psk)).
    type: str
  skip_if_unavailable:
    description:
      - When the Pulumi CLI is missing or cannot read the stack (not logged in), warn once and add no
        cloud hosts instead of failing this inventory source, so operators who only manage the on-prem
        site are not blocked. Malformed outputs still fail.
    type: bool
    default: false
"""

EXAMPLES = r"""
# inventories/production/pulumi.yml — read the `prod` stack with the CLI (needs `pulumi login`):
plugin: pulumi_stack
stack: prod

---
# or from a file exported by the platform team:
#   pulumi stack output --json --stack prod > inventories/production/prod-outputs.json
plugin: pulumi_stack
stack_output_file: prod-outputs.json
"""

# Output keys this plugin relies on (stacks/puente_cloud/outputs.py; a test keeps them in step).
CLOUD_NODES = "cloudNodes"
REQUIRED_OUTPUTS = (CLOUD_NODES, "albDnsName", "vpnTunnelAddresses", "dbEndpoint", "queueUrl", "vpcCidr")
# How `pulumi stack output --json` prints a secret without --show-secrets.
SECRET_PLACEHOLDER = "[secret]"
# Never copied into an inventory, whatever secret_outputs says.
NEVER_READ = ("kubeconfig",)
VPN_TUNNELS = "vpnTunnels"
VPN_PRESHARED_KEYS = "vpnPresharedKeys"
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(key: str) -> str:
    return _CAMEL.sub("_", key).lower()


def variable_name(output_key: str) -> str:
    return "puente_cloud_" + snake(output_key)


def vpn_variables(outputs: dict[str, Any]) -> dict[str, Any]:
    """vpn_tunnels, vpn_remote_cidrs and vpn_local_cidrs from a stack's outputs ({} without a VPN)."""
    tunnels = outputs.get(VPN_TUNNELS)
    if tunnels is None:
        return {}
    if not isinstance(tunnels, list) or not all(
        isinstance(t, dict) and t.get("outsideAddress") for t in tunnels
    ):
        raise AnsibleParserError(f"pulumi_stack: {VPN_TUNNELS} must be a list of tunnels with outsideAddress")
    keys = outputs.get(VPN_PRESHARED_KEYS)
    read = isinstance(keys, list) and len(keys) == len(tunnels)
    found = []
    for i, tunnel in enumerate(tunnels):
        entry = {snake(key): value for key, value in tunnel.items()}
        if read:
            entry["psk"] = keys[i]  # type: ignore[index]
        found.append(entry)
    return {
        "vpn_tunnels": found,
        "vpn_remote_cidrs": [outputs["vpcCidr"]],
        "vpn_local_cidrs": list(outputs.get("onpremCidrs") or []),
    }


class _Unavailable(Exception):
    """The stack could not be read at all (no CLI, no login), as opposed to outputs that are wrong."""


class InventoryModule(BaseInventoryPlugin):
    NAME = "pulumi_stack"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("pulumi.yml", "pulumi.yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        base = os.path.dirname(os.path.abspath(path))
        self.inventory.add_group(self.get_option("site_group"))
        try:
            outputs = self._outputs(base)
            outputs |= self._secrets(base, outputs)
        except _Unavailable as exc:
            if not self.get_option("skip_if_unavailable"):
                raise AnsibleParserError(str(exc)) from exc
            self.display.warning(f"{exc}; no cloud hosts from {path}")
            return
        self._populate(outputs, path)

    def _secrets(self, base: str, outputs: dict[str, Any]) -> dict[str, Any]:
        """The secret outputs of `secret_outputs` the stack has, in plain."""
        wanted = list(self.get_option("secret_outputs") or [])
        refused = [name for name in wanted if name in NEVER_READ]
        if refused:
            raise AnsibleParserError(f"pulumi_stack: {', '.join(refused)} is never copied into an inventory")
        wanted = [name for name in wanted if outputs.get(name) == SECRET_PLACEHOLDER]
        if not wanted:
            return {}
        if self.get_option("stack_output_file"):
            exported = self.get_option("secret_output_file")
            if not exported:
                return {}
            file = os.path.join(base, os.path.expanduser(exported))
            try:  # Ansible's loader: YAML or JSON, ansible-vault encrypted or not
                data = self.loader.load_from_file(file)
            except Exception as exc:  # AnsibleError, OSError: the message says which
                raise AnsibleParserError(
                    f"pulumi_stack: cannot read secret outputs from {file}: {exc}"
                ) from exc
            if not isinstance(data, dict):
                raise AnsibleParserError(f"pulumi_stack: {file} must hold an object {{output: value}}")
            return {name: data[name] for name in wanted if name in data}
        found = {}
        for name in wanted:
            argv = [self.get_option("pulumi_command"), "stack", "output", name, "--json", "--show-secrets"]
            try:
                found[name] = self._run([*argv, "--stack", self.get_option("stack")], base)
            except _Unavailable as exc:
                # e.g. the passphrase of the stack's secrets is not in this environment: the cloud hosts
                # and every other output are still right, only this secret is missing
                self.display.warning(f"{exc}; {variable_name(name)} and what needs it are left out")
        return found

    def _run(self, argv: list[str], base: str) -> Any:
        """Run the Pulumi CLI in the project directory; its JSON output."""
        cwd = os.path.join(base, os.path.expanduser(self.get_option("project_dir")))
        try:
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _Unavailable(f"pulumi_stack: cannot run {' '.join(argv)}: {exc}") from exc
        if done.returncode != 0:
            raise _Unavailable(f"pulumi_stack: {' '.join(argv)} (in {cwd}) failed: {done.stderr.strip()}")
        try:
            return json.loads(done.stdout)
        except ValueError as exc:
            raise AnsibleParserError(f"pulumi_stack: {' '.join(argv)} printed no JSON: {exc}") from exc

    def _outputs(self, base: str) -> dict[str, Any]:
        exported = self.get_option("stack_output_file")
        if exported:
            file = os.path.join(base, os.path.expanduser(exported))
            try:
                with open(file, encoding="utf-8") as fh:
                    data = json.load(fh)
            except (OSError, ValueError) as exc:
                raise AnsibleParserError(
                    f"pulumi_stack: cannot read stack outputs from {file}: {exc}"
                ) from exc
        else:
            stack = self.get_option("stack")
            if not stack:
                raise AnsibleParserError("pulumi_stack: set `stack` (or `stack_output_file`)")
            data = self._run(
                [self.get_option("pulumi_command"), "stack", "output", "--json", "--stack", stack], base
            )
        if not isinstance(data, dict):
            raise AnsibleParserError("pulumi_stack: stack outputs must be a JSON object")
        missing = [k for k in REQUIRED_OUTPUTS if k not in data]
        if missing:
            raise AnsibleParserError(
                f"pulumi_stack: stack outputs lack {', '.join(missing)} (a Puente stack, deployed?)"
            )
        return data

    def _populate(self, outputs: dict[str, Any], path: str) -> None:
        site = self.inventory.add_group(self.get_option("site_group"))
        for key, value in outputs.items():
            if key == CLOUD_NODES or value == SECRET_PLACEHOLDER:
                continue
            self.inventory.set_variable("all", variable_name(key), value)
        for name, value in vpn_variables(outputs).items():
            self.inventory.set_variable("all", name, value)
        nodes = outputs[CLOUD_NODES]
        if not isinstance(nodes, dict):
            raise AnsibleParserError(f"pulumi_stack: {CLOUD_NODES} must be an object in {path}")
        for name, node in nodes.items():
            if not isinstance(node, dict) or not node.get("address"):
                raise AnsibleParserError(f"pulumi_stack: {CLOUD_NODES}.{name} needs an address")
            self.inventory.add_host(name, group=site)
            self.inventory.set_variable(name, "ansible_host", node["address"])
            self.inventory.set_variable(name, "puente_site", self.get_option("site_group"))
            for group in node.get("groups", []):
                self.inventory.add_group(group)
                self.inventory.add_host(name, group=group)
            host_vars = node.get("vars", {})
            if not isinstance(host_vars, dict):
                raise AnsibleParserError(
                    f"pulumi_stack: {CLOUD_NODES}.{name}.vars must be an object in {path}"
                )
            for key, value in host_vars.items():
                self.inventory.set_variable(name, key, value)
