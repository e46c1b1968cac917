"""Filter of the `lab_ca` role: whether a certificate the lab CA signed is still the one asked for.

``lab_ca_certificate_current`` reads, on the controller, the files the role's certificate tasks would
otherwise check one module at a time (key, signing request, certificate: three delegated workers per
certificate on every run, 33 in a no-op site.yml of the lab). It answers True only when all of these hold,
so the role issues the certificate again in every other case:

- the key is an ECDSA P-256 key in a file of mode 0600, the certificate a file of mode 0644;
- the certificate carries that key, was signed by the CA's key and names the CA as its issuer;
- its subject's common name, its subject alternative names and its extended key usages are exactly the
  ones asked for (as ``DNS:name`` / ``IP:address`` and ``serverAuth`` / ``clientAuth``).

Validity dates are left out as the modules leave them out (community.crypto's ``ignore_timestamps``): a
certificate stays until what it says changes.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from typing import Any

from ansible.errors import AnsibleFilterError

_EKU_NAMES = {
    "serverAuth": "1.3.6.1.5.5.7.3.1",
    "clientAuth": "1.3.6.1.5.5.7.3.2",
}


def _mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _wanted_names(subject_alt_names: list[str]) -> set[str]:
    """``DNS:x`` / ``IP:y`` entries, normalised (IP addresses in their canonical form)."""
    names = set()
    for entry in subject_alt_names:
        kind, _, value = str(entry).partition(":")
        if kind == "DNS" and value:
            names.add(f"DNS:{value.lower()}")
        elif kind == "IP" and value:
            names.add(f"IP:{ipaddress.ip_address(value)}")
        else:
            raise AnsibleFilterError(
                f"lab_ca: subject alternative name {entry!r} is neither DNS:... nor IP:..."
            )
    return names


def lab_ca_certificate_current(
    certificate: str,
    key: str,
    ca_certificate: str,
    common_name: str,
    subject_alt_names: list[str],
    extended_key_usage: list[str],
) -> bool:
    """True when ``certificate`` (and ``key``) need no new issue for these inputs; see the module text."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    unknown = [usage for usage in extended_key_usage if usage not in _EKU_NAMES]
    if unknown:
        raise AnsibleFilterError(f"lab_ca: extended key usages {unknown} are not among {sorted(_EKU_NAMES)}")
    wanted_names = _wanted_names(subject_alt_names)
    if _mode(key) != 0o600 or _mode(certificate) != 0o644 or _mode(ca_certificate) is None:
        return False
    try:
        with open(key, "rb") as handle:
            private_key = serialization.load_pem_private_key(handle.read(), password=None)
        with open(certificate, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(ca_certificate, "rb") as handle:
            ca = x509.load_pem_x509_certificate(handle.read())
    except (OSError, ValueError, TypeError):
        return False  # unreadable or not PEM: the role's modules make it again
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != "secp256r1":
        return False
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(der, spki) != private_key.public_key().public_bytes(der, spki):
        return False
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    common_names = [
        str(attribute.value) for attribute in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    ]
    if common_names != [common_name]:
        return False
    try:
        alt_names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    have_names = {f"DNS:{name.lower()}" for name in alt_names.get_values_for_type(x509.DNSName)} | {
        f"IP:{address}" for address in alt_names.get_values_for_type(x509.IPAddress)
    }
    if have_names != wanted_names or len(alt_names) != len(have_names):
        return False
    return {usage.dotted_string for usage in usages} == {_EKU_NAMES[usage] for usage in extended_key_usage}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"lab_ca_certificate_current": lab_ca_certificate_current}
