"""A drill against a lab that is not there, or not whole, stops before touching anything and says why,
in one message and without a traceback (the real `puente` CLI, the real podman)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from puente.drill.faults import TABLE_FAMILY, TABLE_NAME

PUENTE = [sys.executable, "-m", "puente.cli"]


def inventory(tmp_path: Path, sites: dict[str, str]) -> Path:
    """A lab inventory whose nodes (unique names) certainly do not run."""
    tag = uuid.uuid4().hex[:6]
    children: dict[str, dict] = {}
    for i, (site, prefix) in enumerate(sites.items()):
        children[site] = {
            "vars": {"lab_network": f"pdrill-{site}-{tag}", "lab_subnet": f"{prefix}.0/24"},
            "hosts": {
                f"{site}-edge-{tag}": {"ansible_host": f"{prefix}.10"},
                f"{site}-db-{tag}": {"ansible_host": f"{prefix}.31"},
            },
        }
        if i == 0:
            children[site]["hosts"][f"{site}-dns-{tag}"] = {"ansible_host": f"{prefix}.53"}
    children["gateways"] = {"hosts": {f"{s}-edge-{tag}": None for s in sites}}
    children["postgresql"] = {"hosts": {f"{s}-db-{tag}": None for s in sites}}
    children["dns"] = {"hosts": {f"{next(iter(sites))}-dns-{tag}": None}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": children}}))
    return path


def puente(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PUENTE, *args], capture_output=True, text=True, timeout=120)


def no_cut_left() -> bool:
    return (
        subprocess.run(["nft", "list", "table", TABLE_FAMILY, TABLE_NAME], capture_output=True).returncode
        != 0
    )


def _assert_clean_refusal(proc: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "the drill cannot start" in proc.stderr or "malformed" in proc.stderr, proc.stderr
    for phrase in phrases:
        assert phrase in proc.stderr, proc.stderr
    assert no_cut_left()


def test_lab_not_up(tmp_path: Path):
    inv = inventory(tmp_path, {"onprem": "10.251.1", "cloud": "10.251.2"})
    proc = puente("drill", "site-failover", "--inventory", str(inv), "--warmup", "0", "--hold", "0")
    _assert_clean_refusal(proc, "the lab is not up", "puente lab up")


@pytest.mark.parametrize("drill", [["site-failover"], ["failback"]])
def test_one_site_lab_is_refused(tmp_path: Path, drill: list[str]):
    inv = inventory(tmp_path, {"onprem": "10.251.1"})
    proc = puente("drill", *drill, "--inventory", str(inv))
    _assert_clean_refusal(proc, "no `cloud` site")


def test_node_loss_on_a_lab_not_up(tmp_path: Path):
    inv = inventory(tmp_path, {"onprem": "10.251.1"})
    proc = puente(
        "drill",
        "node-loss",
        "--target",
        "db",
        "--node",
        next(h for h in yaml.safe_load(inv.read_text())["all"]["children"]["postgresql"]["hosts"]),
        "--inventory",
        str(inv),
    )
    _assert_clean_refusal(proc, "the lab is not up")


def test_malformed_inventory(tmp_path: Path):
    bad = tmp_path / "hosts.yml"
    bad.write_text(
        "all:\n  children:\n    onprem:\n      vars: {lab_network: puente-onprem, lab_subnet: nope}\n"
    )
    proc = puente("drill", "site-failover", "--inventory", str(bad))
    _assert_clean_refusal(proc, "lab_subnet")


def test_bad_option_values(tmp_path: Path):
    inv = inventory(tmp_path, {"onprem": "10.251.1", "cloud": "10.251.2"})
    proc = puente("drill", "site-failover", "--inventory", str(inv), "--hold", "-1")
    _assert_clean_refusal(proc, "--hold must be >= 0")
