"""The inventory plugin's VPN variables are role vpn's inputs (issue 14): the names it sets are the role's
arguments, and every stack's tunnels, as the plugin delivers them, are turned by the role's filter into
the connections the stack asked for (no lab, no Ansible run: tests/roles/test_vpn.py does both)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from puente_cloud import outputs
from puente_cloud.network import TUNNEL_OPTIONS
from puente_test_support import load_module
from stacks_helpers import REPO, cli_outputs

from puente.pulumikit import Recording

plugin = load_module(REPO / "plugins" / "inventory" / "pulumi_stack.py")
role_filter = load_module(REPO / "roles" / "vpn" / "filter_plugins" / "vpn_swanctl.py")
ROLE_ARGUMENTS = yaml.safe_load((REPO / "roles" / "vpn" / "meta" / "argument_specs.yml").read_text())
LAB_OVERRIDES = REPO / "inventories" / "lab" / "group_vars" / "lab" / "overrides.yml"


def _delivered(stack: Recording) -> dict[str, Any]:
    """What the plugin sets for group `all`: the CLI's outputs with the keys read with --show-secrets."""
    read = cli_outputs(stack) | {outputs.VPN_PRESHARED_KEYS: stack.outputs[outputs.VPN_PRESHARED_KEYS]}
    return plugin.vpn_variables(json.loads(json.dumps(read)))


def test_the_plugins_variables_are_the_roles_arguments(prod: Recording) -> None:
    arguments = ROLE_ARGUMENTS["argument_specs"]["main"]["options"]
    assert set(_delivered(prod)) == {"vpn_tunnels", "vpn_local_cidrs", "vpn_remote_cidrs"}
    assert set(_delivered(prod)) <= set(arguments)
    # every key the role reads is in each tunnel the plugin delivers
    for tunnel in _delivered(prod)["vpn_tunnels"]:
        assert set(role_filter.REQUIRED) | {"psk", "replay_window_size", "startup_action"} <= set(tunnel)


def test_every_stacks_tunnels_become_the_connections_it_asked_for(any_stack: Recording) -> None:
    found = _delivered(any_stack)
    gateway = "192.0.2.5"
    connections = role_filter.vpn_swanctl_connections(
        found["vpn_tunnels"], "onprem", found["vpn_local_cidrs"], found["vpn_remote_cidrs"], gateway, gateway
    )
    secrets = role_filter.vpn_swanctl_secrets(found["vpn_tunnels"], "onprem", gateway)
    addresses = any_stack.outputs[outputs.VPN_TUNNEL_ADDRESSES]
    assert [c["remote_addrs"] for c in connections] == addresses
    assert [s["secret"] for s in secrets] == any_stack.outputs[outputs.VPN_PRESHARED_KEYS]
    for c in connections:
        assert c["remote_ts"] == [any_stack.outputs[outputs.VPC_CIDR]]
        assert c["local_ts"] == any_stack.outputs[outputs.ONPREM_CIDRS]
        assert c["child"]["life_time"] == TUNNEL_OPTIONS["phase2_lifetime_seconds"]
        assert (
            c["child"]["life_time"] - c["child"]["rekey_time"] == TUNNEL_OPTIONS["rekey_margin_time_seconds"]
        )


def test_the_labs_tunnels_have_the_stacks_shape_and_options(prod: Recording) -> None:
    """The lab writes vpn_tunnels by hand (no stack there): the same keys as the plugin delivers, and the
    stack's options; only the addresses and keys are the lab's."""
    lab = yaml.safe_load(LAB_OVERRIDES.read_text())["vpn_tunnels"]
    delivered = _delivered(prod)["vpn_tunnels"]
    assert [set(t) for t in lab] == [set(t) for t in delivered]
    for tunnel in lab:
        assert {k: tunnel[k] for k in TUNNEL_OPTIONS} == TUNNEL_OPTIONS
