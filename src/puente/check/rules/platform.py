"""Rule 7: every host runs an OS the roles applied to it support (their ``meta/main.yml`` platforms).

``puente check`` knows a host's OS only from facts: Ansible's fact cache when one is configured, or the
``--facts`` mode (``ansible -m ansible.builtin.setup``). The preflight play gathers them itself and calls
:func:`host_findings` with the same platforms (:func:`supported`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from puente.check import playbooks
from puente.check.findings import Finding
from puente.check.inventory import ROLES_DIR, Deployment

# Debian's codenames, to say "Debian 12 (bookworm)" rather than a codename alone.
_DEBIAN = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13"}


def supported(roles: tuple[str, ...] | list[str]) -> dict[str, list[playbooks.Platform]]:
    """role -> the platforms it declares (roles declaring none are left out: they accept any)."""
    out = {}
    for role in roles:
        platforms = playbooks.role_contract(ROLES_DIR, role).platforms
        if platforms:
            out[role] = list(platforms)
    return out


def describe(platforms: list[playbooks.Platform]) -> str:
    names = []
    for p in platforms:
        for v in p.versions:
            names.append(
                f"{p.name} {_DEBIAN[v]} ({v})" if p.name == "Debian" and v in _DEBIAN else f"{p.name} {v}"
            )
    return ", ".join(dict.fromkeys(names))


def host_findings(
    host: str, facts: Mapping[str, Any], by_role: Mapping[str, list[playbooks.Platform]]
) -> list[Finding]:
    """The finding for one host's facts (``ansible_facts``: distribution, distribution_release, ...)."""

    def get(key: str) -> str:
        return str(facts.get(key) or facts.get(f"ansible_{key}") or "")

    dist, release = get("distribution"), get("distribution_release")
    major, version = get("distribution_major_version"), get("distribution_version")
    refusing = sorted(
        r for r, ps in by_role.items() if not any(p.accepts(dist, release, major, version) for p in ps)
    )
    if not refusing:
        return []
    wanted = describe([p for r in refusing for p in by_role[r]])
    return [
        Finding(
            "unsupported-os",
            f"host {host}",
            f"it runs {dist or 'an unknown OS'} {version} ({release or 'no codename'}); role(s) "
            f"{', '.join(refusing)} support {wanted} only (roles/*/meta/main.yml platforms).",
            f"reinstall the host with {wanted}.",
        )
    ]


def check(
    d: Deployment, facts: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[list[Finding], list[str]]:
    """Findings, and the hosts whose OS is unknown (no facts)."""
    out, unknown = [], []
    for name, host in sorted(d.hosts.items()):
        host_facts = (facts or {}).get(name) or host.vars.get("ansible_facts") or {}
        if not host_facts.get("distribution"):
            unknown.append(name)
            continue
        out += host_findings(name, host_facts, supported(host.roles))
    return out, unknown
