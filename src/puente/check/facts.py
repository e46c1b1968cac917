"""``--facts``: ask the hosts what OS they run — read-only, one printed ``ansible`` command.

    ansible -i INVENTORY all -m ansible.builtin.setup -a 'gather_subset=!all,min'

Its JSON (Ansible's json stdout callback) gives each host's ``ansible_facts``; a host that cannot be
reached is a finding (its OS, and the deployment, cannot be checked).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from puente.ansible_json import play_results
from puente.check.findings import Finding
from puente.shell import run

SUBSET = "gather_subset=!all,min"


def _ansible() -> str:
    beside = Path(sys.executable).parent / "ansible"  # the .venv's, as the CLI runs from it
    return str(beside) if beside.exists() else "ansible"


def command(sources: Sequence[str], vault_args: Sequence[str] = ()) -> list[str]:
    argv = [_ansible()]
    for source in sources:
        argv += ["-i", source]
    return [*argv, *vault_args, "all", "-m", "ansible.builtin.setup", "-a", SUBSET]


def gather(
    sources: Sequence[str], vault_args: Sequence[str] = ()
) -> tuple[dict[str, dict[str, Any]], list[Finding]]:
    env = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    proc = run(command(sources, vault_args), env=env, capture=True, check=False, timeout=600)
    text = proc.stdout or ""
    try:
        hosts = play_results(text)
    except ValueError:
        return {}, [
            Finding(
                "unsupported-os",
                "--facts",
                f"ansible printed no facts (exit {proc.returncode}): {' '.join(text.split())[-600:]}",
                "run the printed command by hand to see why.",
            )
        ]
    facts, problems = {}, []
    for host, answer in sorted(hosts.items()):
        if answer.get("ansible_facts"):
            # as Ansible stores them (and the fact cache gives them): without the ansible_ prefix
            facts[host] = {k.removeprefix("ansible_"): v for k, v in answer["ansible_facts"].items()}
        else:
            why = " ".join(str(answer.get("msg", "no facts")).split())[:300]
            problems.append(
                Finding(
                    "unsupported-os",
                    f"host {host}",
                    f"its facts could not be gathered, so its OS is unknown: {why}",
                    "make the host reachable with the inventory's connection settings, then check again.",
                )
            )
    return facts, problems
