"""Helpers of the Pulumi program's tests (a module name unique across tests/, unlike `conftest`)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from puente import pulumikit
from puente.pulumikit import Recording

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "stacks"
POLICY_PACK = REPO / "policy"
# The program's and the pack's modules, importable as Pulumi itself makes them (run_path of the dir).
for _path in (PROGRAM, POLICY_PACK):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# Stack files carry no secrets (they are set with `pulumi config set --secret`); tests provide them.
TEST_SECRETS = {"puente:databasePassword": "correct-horse-battery-staple-42"}
DELETE = object()
# The shipped stack files are examples whose placeholders validation refuses: what an operator fills in.
FILLED_VALUES = Path(__file__).resolve().parent / "data" / "filled-stack-values.yaml"


def filled(stack: str) -> dict[str, Any]:
    """{dotted config key: real value} replacing every placeholder of the shipped Pulumi.<stack>.yaml."""
    import yaml

    return dict(yaml.safe_load(FILLED_VALUES.read_text())[stack])


def stack_config(
    stack: str, overrides: Mapping[str, Any] | None = None, fill: bool = True
) -> tuple[str, dict[str, Any]]:
    """Pulumi.<stack>.yaml's config, filled in (unless `fill=False`: the shipped example as it is), with
    `overrides` ({"puente:database.multiAz": False, ...}) applied."""
    project, config = pulumikit.load_stack_config(REPO, stack)
    config = copy.deepcopy(config)
    for dotted, value in {**(filled(stack) if fill else {}), **(overrides or {})}.items():
        key, *path = dotted.split(".")
        if not path:
            if value is DELETE:
                config.pop(key, None)
            else:
                config[key] = value
            continue
        node = config.setdefault(key, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return project, config


def runtime_data(rec: Recording) -> dict[str, str]:
    """The API's runtime settings: the data of the ConfigMap rendered from templates/api/runtime.env.j2."""
    (cm,) = [
        r
        for r in rec.of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"] == "puente-api-runtime"
    ]
    return dict(cm.inputs["data"])


def untagged(value: Any) -> Any:
    """ansible-inventory marks values from outside as unsafe (never templated): {"__ansible_unsafe": v}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: untagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untagged(v) for v in value]
    return value


def ansible_inventory(source: Path, *extra: str) -> Any:
    """`ansible-inventory -i SOURCE --list ...` run from the repository root, so the project's ansible.cfg
    (inventory_plugins) is what finds the plugin; the completed process."""
    import os
    import subprocess

    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(source), "--list", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
    )


def cli_outputs(rec: Recording) -> dict[str, Any]:
    """What `pulumi stack output --json` prints for the stack (secrets masked, no --show-secrets)."""
    return {k: ("[secret]" if k in rec.secret_outputs else v) for k, v in rec.outputs.items()}


def fake_pulumi(path: Path, rec: Recording, stack: str) -> Path:
    """A stand-in for the Pulumi CLI (absent here) at `path`, serving `rec`'s outputs as the real one does:
    `stack output --json --stack STACK` (secrets masked) and `stack output NAME --json --show-secrets
    --stack STACK` (one output, in plain). Any other call fails the way a wrong call would."""
    import json

    data = path.with_suffix(".outputs.json")
    data.write_text(json.dumps({"masked": cli_outputs(rec), "plain": rec.outputs}))
    path.write_text(f"""#!{sys.executable}
import json, sys
data = json.load(open({str(data)!r}))
args = sys.argv[1:]
if args == ["stack", "output", "--json", "--stack", {stack!r}]:
    print(json.dumps(data["masked"]))
elif args[:2] == ["stack", "output"] and args[3:] == ["--json", "--show-secrets", "--stack", {stack!r}]:
    print(json.dumps(data["plain"][args[2]]))
else:
    sys.exit(f"unexpected call: {{args}}")
""")
    path.chmod(0o755)
    return path


def run_stack(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    recording: Recording | None = None,
    fill: bool = True,
) -> Recording:
    project, config = stack_config(stack, overrides, fill)
    return pulumikit.run(
        PROGRAM,
        project=project,
        stack=stack,
        config=config,
        secrets=TEST_SECRETS if secrets is None else secrets,
        recording=recording,
    )


# cloud-init's own schema for user data, copied unchanged from Debian bookworm's cloud-init 22.4.2
# (/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json, Apache-2.0 or
# GPL-3.0): installing cloud-init on a test machine would let it reconfigure that machine at boot.
CLOUD_INIT_SCHEMA = Path(__file__).resolve().parent / "data" / "cloud-init-22.4.2-schema-cloud-config-v1.json"


def cloud_config_errors(text: str) -> list[str]:
    """What `cloud-init schema` would report for this user data (empty when valid)."""
    import json

    import jsonschema
    import yaml

    if text.splitlines()[0] != "#cloud-config":
        return ["user data does not start with #cloud-config"]
    validator = jsonschema.Draft4Validator(json.loads(CLOUD_INIT_SCHEMA.read_text()))
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]
