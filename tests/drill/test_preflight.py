"""A drill against a lab that is not there, or not whole, stops before touching anything and says why,
in one message and without a traceback (the real `puente` CLI, the real podman)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from puente.drill import preflight
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


class _Answers:
    """A stand-in for the drill client: DNS answers, /readyz answers the given statuses in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.asked = 0
        self.config = SimpleNamespace(scheme="http", ca_file=None, name="api.puente.lab")
        self.resolver = SimpleNamespace(resolve=lambda name: SimpleNamespace(addresses=["10.89.1.10"]))

    def get_json(self, path: str) -> tuple[int, dict[str, str]]:
        status = self.statuses[min(self.asked, len(self.statuses) - 1)]
        self.asked += 1
        return status, {"detail": "database unreachable: AdminShutdown"} if status == 503 else {}


def test_an_api_becoming_ready_after_the_setup_switchover_is_waited_for(monkeypatch):
    """Right after the set-up switchover the API answers 503 for a moment (its sessions were cut):
    preflight waits for it instead of refusing the drill; an API that stays 503 is still refused."""
    monkeypatch.setattr(preflight.time, "sleep", lambda s: None)
    topo = SimpleNamespace(db_members=[])
    settling = _Answers([503, 503, 200])
    assert preflight.check_service(topo, settling) == []  # type: ignore[arg-type]
    assert settling.asked == 3
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr(preflight.time, "monotonic", lambda: float(next(clock)))
    stuck = _Answers([503])
    problems = preflight.check_service(topo, stuck)  # type: ignore[arg-type]
    assert len(problems) == 1 and "answered 503" in problems[0] and "AdminShutdown" in problems[0]
    assert stuck.asked == int(preflight.READY_WAIT_SECONDS // 5)  # at 0 s, then 5, 10, 15 s: 20 s is over
