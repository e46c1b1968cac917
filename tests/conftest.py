"""Fixtures shared by every test that needs the lab's nodes (role tests, audit, drills): bring the lab up
and converge it ONCE per session, then verify.

Fixtures (contract, see CONTRACTS.md "Role tests"):
- ``lab``: session-wide; runs ``puente lab up --converge`` (nodes + playbooks/site.yml) once and returns
  the parsed lab inventory. ``PUENTE_LAB_READY=1`` skips it when you know the lab is up and converged
  (faster loops while writing a test).
- ``run_playbook(name, *args, limit=None)``: runs ``ansible-playbook`` against the lab inventory and
  returns the PLAY RECAP as ``{host: {"ok": n, "changed": n, "unreachable": n, "failed": n, "skipped": n,
  "rescued": n, "ignored": n}}``; the full output is attached to the ``RecapDict.output`` attribute.
- ``node(name)``: a testinfra host over ``podman://NAME`` (podman exec: no SSH, no firewall in the way).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import testinfra

REPO = Path(__file__).resolve().parents[1]
CONTAINERS_CONF = REPO / "lab" / "containers.conf"
INVENTORY = "inventories/lab"
VAULT_PASSWORD_FILE = "inventories/lab/vault-password.lab-only"

# testinfra's podman backend runs `podman exec`: it must use the lab's podman settings too.
os.environ.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?"
    r"(?:\s+ignored=(?P<ignored>\d+))?",
    re.MULTILINE,
)


class RecapDict(dict[str, dict[str, int]]):
    """The PLAY RECAP per host, plus what ansible-playbook printed and its exit code."""

    output: str = ""
    returncode: int = 0


def parse_recap(output: str) -> RecapDict:
    recap = RecapDict()
    tail = output[output.rfind("PLAY RECAP") :] if "PLAY RECAP" in output else ""
    for m in _RECAP.finditer(tail):
        recap[m["host"]] = {k: int(v or 0) for k, v in m.groupdict().items() if k != "host"}
    return recap


def ansible_playbook(name: str, *args: str, limit: str | None = None, check: bool = False) -> RecapDict:
    """Run playbooks/NAME against the lab; ``check=True`` raises unless it exits 0."""
    argv = [
        str(REPO / ".venv" / "bin" / "ansible-playbook"),
        "-i", INVENTORY, "--vault-password-file", VAULT_PASSWORD_FILE,
        f"playbooks/{name}", *args,
    ]  # fmt: skip
    if limit:
        argv += ["--limit", limit]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    print("+", " ".join(argv), file=sys.stderr, flush=True)
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    recap = parse_recap(proc.stdout)
    recap.output = proc.stdout + proc.stderr
    recap.returncode = proc.returncode
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{recap.output[-6000:]}")
    if not recap and proc.returncode == 0:
        raise AssertionError(f"no PLAY RECAP in the output of {name}:\n{recap.output[-3000:]}")
    return recap


@pytest.fixture(scope="session")
def lab():
    """The lab up and converged with playbooks/site.yml, once per session."""
    from puente.lab import inventory

    if os.environ.get("PUENTE_LAB_READY") != "1":
        proc = subprocess.run(
            [str(REPO / ".venv" / "bin" / "puente"), "lab", "up", "--converge"], cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
        log = REPO / ".cache" / "lab" / "lab-up.log"  # what the fixture did, kept for the curious
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout)
        if proc.returncode != 0:
            pytest.fail(
                f"`puente lab up` failed ({proc.returncode}):\n{failure_excerpt(proc.stdout)}", pytrace=False
            )
    return inventory.load()


def failure_excerpt(output: str, tail: int = 6000) -> str:
    """The failed tasks of a playbook run (``fatal:``/``failed:`` and what follows) and the recap, then the
    end of the output: the tail alone is mostly the timing table."""
    lines = output.splitlines()
    picked: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith(("fatal:", "failed:")) or "PLAY RECAP" in line:
            picked += [*lines[max(i - 3, 0) : i + 40], "..."]
    return "\n".join([*picked[:400], "--- end of the output ---", output[-tail:]])


@pytest.fixture(scope="session")
def run_playbook(lab) -> Callable[..., RecapDict]:
    return ansible_playbook


@pytest.fixture(scope="session")
def node(lab) -> Callable[[str], testinfra.host.Host]:
    hosts: dict[str, testinfra.host.Host] = {}

    def get(name: str) -> testinfra.host.Host:
        if name not in hosts:
            hosts[name] = testinfra.get_host(f"podman://{name}")
        return hosts[name]

    return get


@pytest.fixture(scope="session")
def api_key(lab) -> str:
    """A key of the lab's API for the tests' requests, made as an operator makes one (puente keys create)."""
    import uuid

    from puente.keys.remote import create

    return create(f"tests-{uuid.uuid4().hex[:8]}", [INVENTORY], label="tests")
