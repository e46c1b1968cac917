"""Rule 3: no documentation or placeholder value where a real one must be.

- Documentation addresses: RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and RFC 3849
  (2001:db8::/32), as an address, a network or inside a URL — in any host's ``ansible_host`` and any
  variable value.
- Documentation domains (RFC 2606 / RFC 6761: example.com, example.net, example.org, and the .example,
  .invalid and .test names) where a value is a host name or a URL's host, and in inventory host names.
- Placeholder Route 53 hosted zone ids (``Z0123456789PRODZONE``, ``ZEXAMPLE``, ``Z000000``...).

The recognition itself is :mod:`puente.placeholders`, shared with the Pulumi program's config validation
(which ``--stack`` runs), so the inventory check and the stack validation never disagree.
"""

from __future__ import annotations

from collections import defaultdict

from puente.check.findings import Finding, hosts_phrase
from puente.check.inventory import Deployment
from puente.check.values import MAGIC_VARS, origin, walk_strings
from puente.placeholders import DOC_NETWORKS, FIX, address_phrases, doc_domain, phrases

__all__ = ["DOC_NETWORKS", "FIX", "check", "doc_domain", "phrases"]


def check(d: Deployment) -> list[Finding]:
    return [*_host_entries(d), *_values(d)]


def _host_entries(d: Deployment) -> list[Finding]:
    """One finding per host whose name or ansible_host is a placeholder (the same fix for both)."""
    out = []
    for name, host in sorted(d.hosts.items()):
        address = host.vars.get("ansible_host")
        parts = [f"ansible_host {p}" for _, p in address_phrases(address)] if isinstance(address, str) else []
        domain = doc_domain(name)
        if domain:
            parts.append(f"the host name is in {domain}, a documentation domain (RFC 2606)")
        if parts:
            out.append(
                Finding(
                    "placeholder",
                    f"{origin(address) or 'inventory'} host {name}",
                    "; ".join(parts) + ".",
                    "give the host its real name and address in the inventory (the name becomes its node "
                    "name in etcd, Patroni and DNS).",
                )
            )
    return out


def _values(d: Deployment) -> list[Finding]:
    seen: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)  # (where, path, kind, what) -> hosts
    for name, host in sorted(d.hosts.items()):
        for var, value in host.vars.items():
            if var in MAGIC_VARS or var == "ansible_host" or var.startswith("ansible_facts"):
                continue
            for path, text in walk_strings(value, var):
                for kind, what in phrases(text, path):
                    seen[(origin(text) or origin(value), path, kind, what)].append(name)
    return [
        Finding(
            "placeholder",
            f"{where or 'host(s) ' + hosts_phrase(hosts)} {path}",
            f"{what} (for {len(hosts)} host(s): {hosts_phrase(hosts)}).",
            FIX[kind],
        )
        for (where, path, kind, what), hosts in sorted(seen.items())
    ]
