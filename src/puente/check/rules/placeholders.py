"""Rule 3: no documentation or placeholder value where a real one must be.

- Documentation addresses: RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and RFC 3849
  (2001:db8::/32), as an address, a network or inside a URL — in any host's ``ansible_host`` and any
  variable value.
- Documentation domains (RFC 2606 / RFC 6761: example.com, example.net, example.org, and the .example,
  .invalid and .test names) where a value is a host name or a URL's host, and in inventory host names.
- Placeholder Route 53 hosted zone ids (``Z0123456789PRODZONE``, ``ZEXAMPLE``, ``Z000000``...).

:func:`phrases` is shared with the stack check (``--stack``).
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from urllib.parse import urlsplit

from puente.check.findings import Finding, hosts_phrase
from puente.check.inventory import Deployment
from puente.check.values import MAGIC_VARS, origin, walk_strings

DOC_NETWORKS = (
    (ipaddress.ip_network("192.0.2.0/24"), "RFC 5737 TEST-NET-1"),
    (ipaddress.ip_network("198.51.100.0/24"), "RFC 5737 TEST-NET-2"),
    (ipaddress.ip_network("203.0.113.0/24"), "RFC 5737 TEST-NET-3"),
    (ipaddress.ip_network("2001:db8::/32"), "RFC 3849"),
)
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?(?![\w])")
_IPV6 = re.compile(r"(?i)(?<![\w:])([0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})(/\d{1,3})?(?![\w:])")
_HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})+\.?$")
_HOST_PORT = re.compile(r"^([A-Za-z0-9_.-]+):\d{1,5}$")
_DOC_DOMAIN = re.compile(r"(?i)(^|\.)(example\.(com|net|org)|[A-Za-z0-9_-]+\.(example|invalid|test))\.?$")
_ZONE_ID = re.compile(r"^Z[0-9A-Z]{6,31}$")
_ZONE_KEY = re.compile(r"(?i)zone_?id")
_ZONE_PLACEHOLDER = re.compile(r"EXAMPLE|PLACEHOLDER|CHANGE|XXXX|ZONE|TEST|0123456|123456789|0{5,}")

FIX = {
    "address": "put the real address (or network) there.",
    "domain": "use your own domain and host names.",
    "zone": "use the real hosted zone id (aws route53 list-hosted-zones).",
}


def _address_phrases(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for regex in (_IPV4, _IPV6):
        for m in regex.finditer(text):
            token = m.group(0)
            try:
                net = ipaddress.ip_network(token, strict=False)
            except ValueError:
                continue
            for doc, rfc in DOC_NETWORKS:
                if net.version == doc.version and net.overlaps(doc):
                    kind = "network" if m.group(2) else "address"
                    found.append(("address", f"{token} is a documentation {kind} ({rfc})"))
    return found


def _host_of(text: str) -> str:
    value = text.strip()
    if "://" in value:
        try:
            return urlsplit(value).hostname or ""
        except ValueError:
            return ""
    m = _HOST_PORT.match(value)
    if m:
        return m.group(1)
    return value if _HOSTNAME.match(value) else ""


def doc_domain(name: str) -> str:
    """The reserved domain ``name`` is in (``example.net``), or ``""``."""
    m = _DOC_DOMAIN.search(name.rstrip("."))
    return m.group(2) if m else ""


def phrases(text: str, key: str = "") -> list[tuple[str, str]]:
    """(kind, what is wrong) for each placeholder in one string value; ``key`` is the variable/config path."""
    found = _address_phrases(text)
    host = _host_of(text)
    domain = doc_domain(host) if host else ""
    if domain:
        found.append(("domain", f"{host} is in {domain}, a documentation domain (RFC 2606)"))
    value = text.strip()
    if (_ZONE_ID.match(value) or _ZONE_KEY.search(key)) and _ZONE_PLACEHOLDER.search(value[1:]):
        found.append(("zone", f"{value} is a placeholder Route 53 hosted zone id"))
    return found


def check(d: Deployment) -> list[Finding]:
    return [*_host_entries(d), *_values(d)]


def _host_entries(d: Deployment) -> list[Finding]:
    """One finding per host whose name or ansible_host is a placeholder (the same fix for both)."""
    out = []
    for name, host in sorted(d.hosts.items()):
        address = host.vars.get("ansible_host")
        parts = (
            [f"ansible_host {p}" for _, p in _address_phrases(address)] if isinstance(address, str) else []
        )
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
