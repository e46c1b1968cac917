"""Rule 8: --stack validates Pulumi.<STACK>.yaml with the program's own validation, and its placeholders."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from check_helpers import REPO, run_check

SECRET = {"secure": "v1:c2VjcmV0IGN5cGhlcnRleHQ=:ZmFrZQ=="}


def _project(tmp_path: Path, stack: str, change: dict[str, object]) -> Path:
    """A project directory with Pulumi.yaml, the program, and Pulumi.<stack>.yaml = dev's with changes."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "stacks").symlink_to(REPO / "stacks")
    data = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    for dotted, value in change.items():
        key, *path = dotted.split(".")
        node = data["config"]
        for part in [key, *path][:-1]:
            node = node[part]
        node[[key, *path][-1]] = value
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return project


# What replaces the placeholders of the shipped dev example (shared with tests/stacks).
FILLED = {
    **yaml.safe_load((REPO / "tests/stacks/data/filled-stack-values.yaml").read_text())["dev"],
    "puente:databasePassword": SECRET,
}


def test_the_shipped_prod_stack_is_refused() -> None:
    proc = run_check("--stack", "prod")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout
    assert "[placeholder] Pulumi.prod.yaml:16 puente:network.vpn.customerGatewayIp" in out
    assert "198.51.100.7 is a documentation address (RFC 5737 TEST-NET-2)" in out
    assert "Z0123456789PRODZONE is a placeholder Route 53 hosted zone id" in out
    assert "puente.example.com is in example.com, a documentation domain" in out
    assert "[placeholder] Pulumi.prod.yaml:30 puente:cluster.publicAccessCidrs[0]" in out
    assert "this ssh-ed25519 public key is an example, not a real key" in out
    # one finding per problem: the program's validation found them, nothing reports them twice
    assert out.count("Z0123456789PRODZONE") == 1
    assert "[stack-config] Pulumi.prod.yaml puente:databasePassword" in out


def test_a_filled_in_stack_passes_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    good = _project(tmp_path, "good", FILLED)
    proc = run_check("--stack", "good", "--project-dir", good)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shutil.rmtree(good)
    bad = _project(tmp_path, "bad", {**FILLED, "puente:database.publiclyAccessible": True})
    proc = run_check("--stack", "bad", "--project-dir", bad)
    assert proc.returncode == 2, proc.stdout
    # the program's own validation, pointed at the line of the key it names
    assert re.search(
        r"\[stack-config\] \S*Pulumi\.bad\.yaml:\d+ puente:database\.publiclyAccessible", proc.stdout
    )
    assert "a public database is refused" in proc.stdout
