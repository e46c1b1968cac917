"""A synthetic audit: a tiny control catalogue run by `puente audit` on two local "hosts" (no lab needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from puente.shell import ROOT

# Two inventory hosts that testinfra reaches with its local backend (ansible_connection: local). Each
# control reads a per-host file, so one host can pass and the other fail, as on real nodes.
INVENTORY = """\
all:
  children:
    onprem:
      hosts:
        node-a: {ansible_connection: local, ansible_become: false}
        node-b: {ansible_connection: local, ansible_become: false}
    api_nodes:
      hosts:
        node-b:
"""

CONTROLS = """\
import os

import pytest

from puente.audit import control

STATE = os.environ["AUDIT_SYNTHETIC_STATE"]


@control(id="PUENTE-DEMO-01", title="The service config says secure", impact=0.7,
         rationale="A config that is not secure exposes the service.",
         refs={"cis": "1.1.1", "nist": ["CM-6"]}, groups=["all"])
@pytest.mark.parametrize("word", ["secure"])
def test_conf(host, word):
    content = host.file(f"{STATE}/{host.name}.conf").content_string.strip()
    assert content == word, f"{host.name} config says {content!r}"


@control(id="PUENTE-DEMO-02", title="Long output wraps in the report", impact=0.3,
         rationale="Evidence can hold long unbroken lines (keys, certificates, base64).",
         refs={"nist": ["SI-6"]}, groups=["api_nodes"])
def test_long_output(host):
    out = host.check_output("printf '%0600d' 0")
    assert len(out) == 600


@control(id="PUENTE-DEMO-03", title="Applies to no host of this inventory", impact=0.0,
         rationale="Shown as not applicable.", refs={"nist": ["SI-6"]}, groups=["etcd"])
def test_not_applicable(host):
    raise AssertionError("never runs")
"""


def waivers_yaml(expires: str) -> str:
    return textwrap.dedent(f"""\
        waivers:
          - control: PUENTE-DEMO-01
            hosts: [node-b]
            justification: legacy node, replaced next quarter (ticket OPS-42)
            expires: {expires}
            approved_by: security team
        """)


@dataclass
class Synthetic:
    root: Path

    @property
    def inventory(self) -> Path:
        return self.root / "hosts.yml"

    @property
    def controls(self) -> Path:
        return self.root / "controls"

    @property
    def waivers(self) -> Path:
        return self.root / "waivers.yml"

    def audit(self, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = audit_command(
            self.inventory, out, "--waivers", str(self.waivers), "--catalogue", str(self.controls), *extra
        )
        env = {**os.environ, "AUDIT_SYNTHETIC_STATE": str(self.root / "state")}
        return subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
        )


def audit_command(inventory: Path | str, out: Path, *extra: str) -> list[str]:
    """`puente audit -i INVENTORY --out OUT EXTRA...`, run as the tests run it (this interpreter)."""
    return [sys.executable, "-m", "puente.cli", "audit", "-i", str(inventory), "--out", str(out), *extra]


def make_synthetic(root: Path) -> Synthetic:
    s = Synthetic(root)
    s.inventory.write_text(INVENTORY)
    s.controls.mkdir()
    (s.controls / "test_demo.py").write_text(CONTROLS)
    state = root / "state"
    state.mkdir()
    (state / "node-a.conf").write_text("secure\n")
    (state / "node-b.conf").write_text("insecure\n")
    s.waivers.write_text(waivers_yaml("2030-01-01"))
    return s
