"""Placeholder values: what marks a value as an example still waiting for the real one.

One implementation for both sides: ``puente check``'s inventory rules (``puente.check.rules``) and the
Pulumi program's config validation (``stacks/puente_cloud/config.py``), so the two never disagree. Pure
text functions, no Ansible or Pulumi import.

- Documentation addresses: RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and RFC 3849
  (2001:db8::/32), as an address, a network (also one containing them) or inside a URL.
- Documentation domains (RFC 2606 / RFC 6761: example.com, example.net, example.org, and the .example,
  .invalid and .test names) where a value is a host name, ``host:port`` or a URL's host.
- Placeholder Route 53 hosted zone ids. Real ids are ``Z`` followed by 4-31 random upper-case letters and
  digits (``Z1D633PJN98FT9``, ``Z08264242QF2EBTCE2N6Y``); a value shaped like one (or under a key named
  ``*zoneId*``/``*zone_id*``) is a placeholder when, after the ``Z``, it contains EXAMPLE, PLACEHOLDER,
  CHANGE, six X or six zeros, a counting run (``0123456``, ``123456789``), or ends in ZONE or TEST. Each
  is 6+ fixed characters anywhere or 4 at a fixed place: a random 21-character id matches with a
  probability of about one in a million (the 4-letter endings dominate, 2 x 36^-4).
- Markers left for a person (``CHANGE-ME``, ``REPLACE-ME``, ``FILL-ME-IN``, ``FIXME``, ``<your key>``),
  and SSH public keys whose base64 body spells such a word (``AAAA...ExampleKeyReplaceMe...``).
- Placeholder image digests: ``sha256:`` + 64 hex digits using fewer than 8 distinct digits (``000...``,
  ``abab...``) or holding ``0123456789abcdef`` or ``deadbeef`` — a real SHA-256 uses all 16 digits but
  for a chance below 10^-20, and holds a given 8-digit run with a chance of about 10^-8.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

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
_ZONE_PLACEHOLDER = re.compile(r"EXAMPLE|PLACEHOLDER|CHANGE|X{6,}|0123456|123456789|0{6,}|(ZONE|TEST)$")
# A marker left for a person to replace, anywhere in a value.
MARKER = re.compile(r"(?i)\b(change[-_ ]?me|replace[-_ ]?me|fill[-_ ]?me[-_ ]?in|fixme)\b|<[A-Za-z _-]+>")
_SSH_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) ([A-Za-z0-9+/=]+)")
_SSH_KEY_WORD = re.compile(r"(?i)example|replace|placeholder|changeme|your(own)?key")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DIGEST_PLACEHOLDER = re.compile(r"0123456789abcdef|deadbeef")

FIX = {
    "address": "put the real address (or network) there.",
    "domain": "use your own domain and host names.",
    "zone": "use the real hosted zone id (aws route53 list-hosted-zones).",
    "marker": "put the real value there.",
    "digest": "push the image and set the digest `podman push --digestfile` wrote (docs/CLOUD.md).",
}


def address_phrases(text: str) -> list[tuple[str, str]]:
    """("address", what) for each documentation address or network in ``text``."""
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
    """(kind, what is wrong) for each documentation address, domain or zone id in one string value;
    ``key`` is the variable/config path (a ``*zoneId*`` key makes any value a zone id)."""
    found = address_phrases(text)
    host = _host_of(text)
    domain = doc_domain(host) if host else ""
    if domain:
        found.append(("domain", f"{host} is in {domain}, a documentation domain (RFC 2606)"))
    value = text.strip()
    if (_ZONE_ID.match(value) or _ZONE_KEY.search(key)) and _ZONE_PLACEHOLDER.search(value[1:]):
        found.append(("zone", f"{value} is a placeholder Route 53 hosted zone id"))
    return found


def marker_phrases(text: str) -> list[tuple[str, str]]:
    """(kind, what) when the value is still a marker for a person to replace, an example SSH key or a
    placeholder image digest."""
    m = MARKER.search(text)
    if m:
        return [("marker", f"the value is still the placeholder {m.group(0)!r}")]
    key = _SSH_KEY.match(text.strip())
    if key and _SSH_KEY_WORD.search(key.group(3)):
        return [("marker", f"this {key.group(1)} public key is an example, not a real key")]
    value = text.strip()
    if DIGEST.match(value) and (len(set(value[7:])) < 8 or _DIGEST_PLACEHOLDER.search(value)):
        return [("digest", f"{value[:19]}... is a placeholder image digest, not one a registry computed")]
    return []


def all_phrases(text: str, key: str = "") -> list[tuple[str, str]]:
    """Every placeholder in one value: :func:`phrases` and :func:`marker_phrases`."""
    return [*phrases(text, key), *marker_phrases(text)]
