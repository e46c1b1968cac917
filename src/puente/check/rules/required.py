"""Rule 1: every variable a host needs is defined — ``puente_site``, ``puente_dns_zone``, and each input
the roles applied to it mark ``required`` in ``meta/argument_specs.yml`` (and have no role default).

A required input that is set but renders to an undefined variable (``api_database_password:
"{{ vault_api_database_password }}"`` with no vault defining it) is undefined too. When an encrypted vault
could not be read (no password given), missing ``vault_*`` variables are not reported: they may be in it.
"""

from __future__ import annotations

from collections import defaultdict

from puente.check import playbooks
from puente.check.findings import Finding, hosts_phrase
from puente.check.inventory import (
    LAB_ENVIRONMENT,
    ROLES_DIR,
    Deployment,
    TemplateProblem,
)
from puente.check.values import origin

SITE_VAR = "puente_site"
ZONE_VAR = "puente_dns_zone"


def check(d: Deployment) -> list[Finding]:
    return [*_sites(d), *_zone(d), *_role_inputs(d)]


def _sites(d: Deployment) -> list[Finding]:
    out: list[Finding] = []
    undefined: dict[str, list[str]] = defaultdict(list)  # site group -> hosts
    site_names = ", ".join(d.sites) or "none found"
    for name, host in sorted(d.hosts.items()):
        sites = d.sites_of(name)
        if len(sites) != 1:
            out.append(
                Finding(
                    "required-variable",
                    f"host {name}",
                    "it belongs to "
                    f"{'no site group' if not sites else 'several site groups: ' + ', '.join(sites)} (site "
                    f"groups: {site_names}), so its site is unknown.",
                    "put every host in exactly one site group (onprem, cloud, witness, ... as in "
                    "inventories/lab).",
                )
            )
            continue
        value = host.vars.get(SITE_VAR)
        if value is None:
            undefined[sites[0]].append(name)
        elif str(value) != sites[0]:
            out.append(
                Finding(
                    "required-variable",
                    f"{origin(value) or 'host ' + name} {SITE_VAR}",
                    f"host {name} says it is on site {value!s} but it is in site group {sites[0]}.",
                    f"make {SITE_VAR} the name of the host's site group ({sites[0]}).",
                )
            )
    for site, hosts in sorted(undefined.items()):
        out.append(
            Finding(
                "required-variable",
                f"group {site}",
                f"{SITE_VAR} is undefined for {len(hosts)} host(s) ({hosts_phrase(hosts)}); the playbooks "
                f"pick each site's API nodes and database members with groups[{SITE_VAR}].",
                f"set `{SITE_VAR}: {site}` in the inventory's group_vars/{site}.yml (as "
                f"inventories/production/group_vars/{site}.yml does).",
            )
        )
    return out


def _zone(d: Deployment) -> list[Finding]:
    out: list[Finding] = []
    missing = [n for n, h in d.hosts.items() if ZONE_VAR not in h.vars]
    empty = [n for n, h in d.hosts.items() if ZONE_VAR in h.vars and not str(h.vars[ZONE_VAR]).strip()]
    for hosts, state in ((missing, "undefined"), (empty, "empty")):
        if hosts:
            out.append(
                Finding(
                    "required-variable",
                    f"hosts {hosts_phrase(hosts)}",
                    f"{ZONE_VAR} (the DNS zone PowerDNS serves and the gateway's name lives in) is {state}.",
                    f"set {ZONE_VAR} in the inventory's group_vars/all/ (as inventories/production does).",
                )
            )
    if d.environment == LAB_ENVIRONMENT:
        return out
    lab_zone: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, host in d.hosts.items():
        value = host.vars.get(ZONE_VAR)
        if isinstance(value, str) and value.rstrip(".").endswith(".lab"):
            lab_zone[(value, origin(value))].append(name)
    for (value, where), hosts in sorted(lab_zone.items()):
        out.append(
            Finding(
                "required-variable",
                f"{where or 'hosts ' + hosts_phrase(hosts)} {ZONE_VAR}",
                f"{ZONE_VAR} is {value}, the lab's zone, for {len(hosts)} host(s) of a non-lab inventory: "
                "the gateway would answer as api." + value + ".",
                f"set your zone as {ZONE_VAR} in this inventory's group_vars/all/.",
            )
        )
    return out


def _role_inputs(d: Deployment) -> list[Finding]:
    # (variable, role, why) -> hosts: one finding per missing input, naming every host that misses it
    missing: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for name, host in sorted(d.hosts.items()):
        for role in host.roles:
            contract = playbooks.role_contract(ROLES_DIR, role)
            for var in (*contract.required, *contract.secrets):
                why = _why_undefined(d, name, var)
                if why is not None:
                    missing[(var, role, why)].append(name)
    out = []
    for (var, role, why), hosts in sorted(missing.items()):
        contract = playbooks.role_contract(ROLES_DIR, role)
        needed = why.removeprefix("needs ")
        if needed.startswith("vault_"):
            fix = (
                f"define {needed} in the inventory's encrypted vault (group_vars/all/vault.yml; the names "
                "are in inventories/production/group_vars/all/vault.yml.example)."
            )
        elif why.startswith("needs "):
            fix = f"define {needed} for these hosts in the inventory."
        else:
            fix = f"set {var} for these hosts in the inventory ({contract.descriptions.get(var, '')})."
        out.append(
            Finding(
                "required-variable",
                f"role {role}, host(s) {hosts_phrase(hosts)}",
                (
                    f"{var}, a required input of role {role} (roles/{role}/meta/argument_specs.yml), "
                    if var in contract.required
                    else f"{var}, a secret of role {role} (roles/{role}/defaults/main.yml), "
                )
                + (
                    "is undefined."
                    if why == "unset"
                    else "is empty."
                    if why == "empty"
                    else f"cannot be rendered: it {why}, which is undefined."
                    if why.startswith("needs ")
                    else f"cannot be rendered: {why}."
                ),
                fix,
            )
        )
    return out


def _why_undefined(d: Deployment, host: str, var: str) -> str | None:
    """None when it has a value; "unset", "empty", "needs <variable>" or Ansible's message otherwise.

    A role default of "" (powerdns_api_key, powerdns_zone) only stands in: it is no value either.
    """
    value = d.value(host, var)
    if value is None:
        return "unset"
    try:
        rendered = d.template(host, value)
    except TemplateProblem as exc:
        if d.uninspected and (exc.vault or exc.undefined.startswith("vault_")):
            return None  # it may be in the encrypted vault we were not given the password of
        return f"needs {exc.undefined}" if exc.undefined else str(exc)
    return "empty" if rendered in ("", None) else None
