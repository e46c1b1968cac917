"""Lookup `puente_check`: the rules of `puente check` (src/puente/check, docs/CHECK.md) inside a playbook.

Found by ansible-playbook next to the playbooks (playbooks/lookup_plugins). Used by playbooks/preflight.yml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: puente_check
short_description: Run puente check's rules on the running inventory, or its OS rule on one host's facts
description:
  - C(inventory) reads the inventory sources of the run as puente check does (InventoryManager and
    VariableManager, with the playbooks' group_vars and the run's vault secrets) and returns one dict,
    C(findings) (one message per problem), C(notes) and C(platforms) (host -> role -> supported platforms).
  - C(platform) returns the messages for one host's facts against the platforms given.
options:
  _terms:
    description: C(inventory) or C(platform).
    required: true
  facts:
    description: The host's ansible_facts (C(platform) only).
    type: dict
  platforms:
    description:
      - role -> list of {name, versions}, from the C(inventory) answer for this host (C(platform) only).
    type: dict
"""

EXAMPLES = r"""
- name: Run puente check's inventory rules
  ansible.builtin.set_fact:
    __puente_check: "{{ query('puente_check', 'inventory') | first }}"
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        try:
            from puente.check import engine
            from puente.check import inventory as check_inventory
            from puente.check.playbooks import Platform
            from puente.check.rules import platform
        except ImportError as exc:
            raise AnsibleLookupError(
                f"puente_check needs the puente package ({exc}): run ansible-playbook from the project's "
                ".venv"
            ) from exc
        what = terms[0] if terms else "inventory"
        variables = variables or {}
        if what == "platform":
            by_role = {
                role: [Platform(str(p["name"]), tuple(str(v) for v in p["versions"])) for p in platforms]
                for role, platforms in (kwargs.get("platforms") or {}).items()
            }
            host = str(variables.get("inventory_hostname", ""))
            return [str(f) for f in platform.host_findings(host, kwargs.get("facts") or {}, by_role)]
        if what != "inventory":
            raise AnsibleLookupError(f"puente_check: unknown term {what!r} (inventory or platform)")
        basedir = self._loader.get_basedir()
        try:
            deployment = check_inventory.load(
                [str(s) for s in variables.get("ansible_inventory_sources") or []],
                loader=self._loader,
                playbook_dir=Path(str(variables.get("playbook_dir", basedir))),
            )
        finally:
            self._loader.set_basedir(basedir)
        report = engine.check_inventory(deployment)
        return [
            {
                "findings": [str(f) for f in report.findings],
                "notes": report.notes,
                "platforms": engine.platforms_by_host(deployment),
            }
        ]
