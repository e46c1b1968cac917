"""The site-to-site VPN as an on-prem strongSwan needs it (issue 14): the tunnel options set on the
connection, the stack's outputs, and the inventory plugin turning them into `vpn_*` variables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from puente_cloud import outputs
from puente_cloud.config import ConfigError
from stacks_helpers import ansible_inventory, cli_outputs, fake_pulumi, run_stack, untagged

from puente.pulumikit import Recording

VPN = "aws:ec2/vpnConnection:VpnConnection"
# What AWS's site-to-site VPN accepts and the program pins on both tunnels (stacks/puente_cloud/network.py).
EXPECTED_OPTIONS = {
    "ikeVersions": ["ikev2"],
    "phase1EncryptionAlgorithms": ["AES256-GCM-16", "AES256"],
    "phase1IntegrityAlgorithms": ["SHA2-256"],
    "phase1DhGroupNumbers": [14, 19, 20],
    "phase1LifetimeSeconds": 28800,
    "phase2EncryptionAlgorithms": ["AES256-GCM-16", "AES256"],
    "phase2IntegrityAlgorithms": ["SHA2-256"],
    "phase2DhGroupNumbers": [14, 19, 20],
    "phase2LifetimeSeconds": 3600,
    "dpdTimeoutSeconds": 30,
    "dpdTimeoutAction": "clear",
    "rekeyMarginTimeSeconds": 540,
    "rekeyFuzzPercentage": 100,
    "replayWindowSize": 1024,
    "startupAction": "add",
}


def test_both_tunnels_are_configured_explicitly_as_aws_and_strongswan_agree(any_stack: Recording) -> None:
    vpn = any_stack.one(VPN)
    for i in (1, 2):
        configured = {key: vpn.inputs.get(f"tunnel{i}{key[0].upper()}{key[1:]}") for key in EXPECTED_OPTIONS}
        assert configured == EXPECTED_OPTIONS, i
        # AWS accepts a rekey margin of at most half the phase 2 lifetime
        assert configured["rekeyMarginTimeSeconds"] <= configured["phase2LifetimeSeconds"] / 2
        assert f"tunnel{i}PresharedKey" not in vpn.inputs  # AWS generates it; exported as a secret


def test_the_stack_exports_what_the_onprem_end_needs(any_stack: Recording) -> None:
    vpn = any_stack.one(VPN)
    tunnels = any_stack.outputs[outputs.VPN_TUNNELS]
    assert [t["tunnel"] for t in tunnels] == [1, 2]
    assert [t["outsideAddress"] for t in tunnels] == any_stack.outputs[outputs.VPN_TUNNEL_ADDRESSES]
    for i, tunnel in enumerate(tunnels, start=1):
        # as the provider reports them, not as requested
        assert tunnel["insideCidr"] == vpn.outputs[f"tunnel{i}InsideCidr"]
        assert tunnel["onpremInsideAddress"] == vpn.outputs[f"tunnel{i}CgwInsideAddress"]
        assert tunnel["awsInsideAddress"] == vpn.outputs[f"tunnel{i}VgwInsideAddress"]
        assert {k: tunnel[k] for k in EXPECTED_OPTIONS} == EXPECTED_OPTIONS
    keys = any_stack.outputs[outputs.VPN_PRESHARED_KEYS]
    assert keys == [vpn.outputs["tunnel1PresharedKey"], vpn.outputs["tunnel2PresharedKey"]]
    assert outputs.VPN_PRESHARED_KEYS in any_stack.secret_outputs
    assert cli_outputs(any_stack)[outputs.VPN_PRESHARED_KEYS] == "[secret]"
    assert any_stack.outputs[outputs.ONPREM_CIDRS] == ["10.89.0.0/16"]


def test_inside_cidrs_from_config_reach_the_connection_and_the_outputs() -> None:
    chosen = ["169.254.10.0/30", "169.254.11.4/30"]
    rec = run_stack("dev", {"puente:network.vpn.tunnelInsideCidrs": chosen})
    vpn = rec.one(VPN)
    assert [vpn.inputs["tunnel1InsideCidr"], vpn.inputs["tunnel2InsideCidr"]] == chosen
    tunnels = rec.outputs[outputs.VPN_TUNNELS]
    assert [(t["insideCidr"], t["awsInsideAddress"], t["onpremInsideAddress"]) for t in tunnels] == [
        ("169.254.10.0/30", "169.254.10.1", "169.254.10.2"),
        ("169.254.11.4/30", "169.254.11.5", "169.254.11.6"),
    ]


@pytest.mark.parametrize(
    ("cidrs", "expected"),
    [
        (["169.254.10.0/30"], "needs two different /30 networks, one per tunnel"),
        (["169.254.10.0/29", "169.254.11.0/30"], "169.254.10.0/29 is not a /30 inside 169.254.0.0/16"),
        (["10.0.0.0/30", "169.254.11.0/30"], "10.0.0.0/30 is not a /30 inside 169.254.0.0/16"),
        (["169.254.169.252/30", "169.254.11.0/30"], "169.254.169.252/30 is reserved by AWS"),
    ],
)
def test_bad_inside_cidrs_are_refused(cidrs: list[str], expected: str) -> None:
    recording = Recording(project="puente", stack="dev")
    with pytest.raises(ConfigError) as info:
        run_stack("dev", {"puente:network.vpn.tunnelInsideCidrs": cidrs}, recording=recording)
    assert f"puente:network.vpn.tunnelInsideCidrs: {expected}" in str(info.value)


def _vpn_variables(prod: Recording, psk: bool = True) -> dict[str, Any]:
    """What the plugin must set, built from the recording (the expected side of the tests below)."""
    tunnels = []
    for i, tunnel in enumerate(prod.outputs[outputs.VPN_TUNNELS]):
        entry = {
            "tunnel": i + 1,
            "outside_address": tunnel["outsideAddress"],
            "inside_cidr": tunnel["insideCidr"],
            "onprem_inside_address": tunnel["onpremInsideAddress"],
            "aws_inside_address": tunnel["awsInsideAddress"],
            # the options in Ansible's spelling: phase1DhGroupNumbers -> phase1_dh_group_numbers
            **{re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in EXPECTED_OPTIONS.items()},
        }
        if psk:
            entry["psk"] = prod.outputs[outputs.VPN_PRESHARED_KEYS][i]
        tunnels.append(entry)
    return {
        "vpn_tunnels": tunnels,
        "vpn_remote_cidrs": [prod.outputs[outputs.VPC_CIDR]],
        "vpn_local_cidrs": ["10.89.0.0/16"],
    }


def _ansible_inventory(source: Path, *extra: str) -> dict[str, Any]:
    done = ansible_inventory(source, *extra)
    assert done.returncode == 0, done.stderr
    return untagged(json.loads(done.stdout))["_meta"]["hostvars"]


def _config(tmp_path: Path, **options: Any) -> Path:
    path = tmp_path / "pulumi.yml"
    path.write_text(yaml.safe_dump({"plugin": "pulumi_stack", **options}))
    return path


def test_the_prod_stack_feeds_vpn_variables_through_the_cli(prod: Recording, tmp_path: Path) -> None:
    """The shipped production config's way: the plugin runs the CLI, once for the outputs and once, with
    --show-secrets, for the pre-shared keys only."""
    (tmp_path / "Pulumi.yaml").write_text("name: puente\n")
    (tmp_path / "bin").mkdir()
    fake = fake_pulumi(tmp_path / "bin" / "pulumi", prod, "prod")
    source = _config(tmp_path, stack="prod", project_dir=".", pulumi_command=str(fake))
    hostvars = _ansible_inventory(source)
    some_member = hostvars["cloud-db1"]
    expected = _vpn_variables(prod)
    assert {k: some_member[k] for k in expected} == expected
    first = some_member["vpn_tunnels"][0]
    assert (first["phase1_dh_group_numbers"], first["dpd_timeout_seconds"], first["outside_address"]) == (
        [14, 19, 20],
        30,
        prod.outputs[outputs.VPN_TUNNEL_ADDRESSES][0],
    )
    # the keys' own variable, like every output read; the other secrets stay out
    assert some_member["puente_cloud_vpn_preshared_keys"] == prod.outputs[outputs.VPN_PRESHARED_KEYS]
    assert "puente_cloud_kubeconfig" not in some_member
    assert "puente_cloud_backup_secret_access_key" not in some_member
    assert some_member["puente_cloud_backup_key_id"] == prod.outputs[outputs.BACKUP_KEY_ID]


def test_an_exported_stack_with_a_vault_encrypted_secret_file(prod: Recording, tmp_path: Path) -> None:
    """A machine without the CLI: the outputs exported, the keys in a file encrypted with ansible-vault."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    (tmp_path / "outputs.json").write_text(json.dumps(cli_outputs(prod)))
    secrets = {outputs.VPN_PRESHARED_KEYS: prod.outputs[outputs.VPN_PRESHARED_KEYS]}
    vault = VaultLib([("default", VaultSecret(b"correct horse"))])
    (tmp_path / "secrets.vault").write_bytes(vault.encrypt(json.dumps(secrets)))
    (tmp_path / "vault-password").write_text("correct horse\n")
    source = _config(tmp_path, stack_output_file="outputs.json", secret_output_file="secrets.vault")
    hostvars = _ansible_inventory(source, "--vault-password-file", str(tmp_path / "vault-password"))
    expected = _vpn_variables(prod)
    assert {k: hostvars["cloud-db2"][k] for k in expected} == expected
    # without the secret file: the same tunnels, no keys, and no failure
    source = _config(tmp_path, stack_output_file="outputs.json")
    expected = _vpn_variables(prod, psk=False)
    assert {k: _ansible_inventory(source)["cloud-db2"][k] for k in expected} == expected


def test_the_kubeconfig_is_never_read(prod: Recording, tmp_path: Path) -> None:
    (tmp_path / "outputs.json").write_text(json.dumps(cli_outputs(prod)))
    source = _config(
        tmp_path, stack_output_file="outputs.json", secret_outputs=["vpnPresharedKeys", "kubeconfig"]
    )
    done = ansible_inventory(source)
    assert done.returncode != 0
    assert "kubeconfig is never copied into an inventory" in done.stderr


def test_a_secret_the_cli_cannot_show_leaves_the_rest_loaded(prod: Recording, tmp_path: Path) -> None:
    """E.g. PULUMI_CONFIG_PASSPHRASE missing: the outputs load, the keys do not, a warning says so."""
    (tmp_path / "Pulumi.yaml").write_text("name: puente\n")
    (tmp_path / "bin").mkdir()
    fake = fake_pulumi(tmp_path / "bin" / "pulumi", prod, "prod")
    fake.write_text(
        fake.read_text().replace(
            "args = sys.argv[1:]",
            "args = sys.argv[1:]\nif '--show-secrets' in args: sys.exit('passphrase must be set')",
        )
    )
    done = ansible_inventory(_config(tmp_path, stack="prod", project_dir=".", pulumi_command=str(fake)))
    assert done.returncode == 0, done.stderr
    assert (
        "passphrase must be set" in done.stderr and "puente_cloud_vpn_preshared_keys and what" in done.stderr
    )
    hostvars = untagged(json.loads(done.stdout))["_meta"]["hostvars"]
    expected = _vpn_variables(prod, psk=False)
    assert {k: hostvars["cloud-db1"][k] for k in expected} == expected
