"""Filter lab_ca_certificate_current (roles/lab_ca/filter_plugins/lab_ca.py): True only for a certificate the
role's modules would leave as it is. The role itself issues every lab certificate in each lab converge
(tests/roles: etcd, PostgreSQL, RabbitMQ, gateways and the S3 stand-ins verify them)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]
lab_ca = load_module(REPO / "roles" / "lab_ca" / "filter_plugins" / "lab_ca.py")

SANS = ["DNS:onprem-db1", "IP:10.89.1.31", "IP:127.0.0.1"]
EKU = ["serverAuth", "clientAuth"]
OIDS = {
    "serverAuth": x509.ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": x509.ExtendedKeyUsageOID.CLIENT_AUTH,
}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(folder: Path, name: str = "Puente lab CA (not for production)") -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(folder / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(folder / "ca.key", _pem_key(key), 0o600)
    return cert, key


def issue(
    folder: Path,
    ca: tuple[x509.Certificate, Any],
    *,
    common_name: str = "onprem-db1",
    sans: list[str] = SANS,
    eku: list[str] = EKU,
    key: Any = None,
) -> None:
    """What the role's three certificate tasks leave in the CA folder, as onprem-db1-etcd.{key,crt}."""
    ca_cert, ca_key = ca
    key = key or ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for entry in sans:
        kind, _, value = entry.partition(":")
        names.append(x509.DNSName(value) if kind == "DNS" else x509.IPAddress(ipaddress.ip_address(value)))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([OIDS[usage] for usage in eku]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "onprem-db1-etcd.key", _pem_key(key), 0o600)
    _write(folder / "onprem-db1-etcd.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def current(folder: Path, **asked: Any) -> bool:
    args: dict[str, Any] = {"common_name": "onprem-db1", "subject_alt_names": SANS, "extended_key_usage": EKU}
    args.update(asked)
    return bool(
        lab_ca.lab_ca_certificate_current(
            str(folder / "onprem-db1-etcd.crt"),
            str(folder / "onprem-db1-etcd.key"),
            str(folder / "ca.crt"),
            args["common_name"],
            args["subject_alt_names"],
            args["extended_key_usage"],
        )
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    issue(tmp_path, make_ca(tmp_path))
    return tmp_path


def test_the_certificate_asked_for_is_current(folder: Path) -> None:
    assert current(folder)
    # the order of names and usages, the case of DNS names and an IP's spelling do not matter
    assert current(folder, subject_alt_names=["IP:127.0.0.1", "DNS:ONPREM-DB1", "IP:10.89.1.31"])
    assert current(folder, extended_key_usage=["clientAuth", "serverAuth"])


@pytest.mark.parametrize(
    "asked",
    [
        {"common_name": "onprem-db2"},
        {"subject_alt_names": [*SANS, "IP:10.89.1.99"]},  # a new address peers connect with
        {"subject_alt_names": SANS[:2]},  # one name less
        {"extended_key_usage": ["serverAuth"]},
    ],
    ids=["common name", "name added", "name removed", "usage removed"],
)
def test_a_changed_request_is_not_current(folder: Path, asked: dict[str, Any]) -> None:
    assert not current(folder, **asked)


def test_missing_files_are_not_current(folder: Path) -> None:
    (folder / "onprem-db1-etcd.key").unlink()
    assert not current(folder)
    assert not current(folder.parent / "nowhere")


def test_file_modes_the_modules_set_are_part_of_current(folder: Path) -> None:
    os.chmod(folder / "onprem-db1-etcd.key", 0o644)
    assert not current(folder)
    os.chmod(folder / "onprem-db1-etcd.key", 0o600)
    os.chmod(folder / "onprem-db1-etcd.crt", 0o600)
    assert not current(folder)


def test_a_certificate_of_another_ca_is_not_current(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    issue(tmp_path, make_ca(other))  # signed by another CA of the same name
    make_ca(tmp_path)
    assert not current(tmp_path)


def test_a_key_that_is_not_the_certificates_is_not_current(folder: Path) -> None:
    _write(folder / "onprem-db1-etcd.key", _pem_key(ec.generate_private_key(ec.SECP256R1())), 0o600)
    assert not current(folder)


def test_a_key_of_another_type_is_not_current(tmp_path: Path) -> None:
    issue(tmp_path, make_ca(tmp_path), key=ec.generate_private_key(ec.SECP384R1()))
    assert not current(tmp_path)
    issue(tmp_path, make_ca(tmp_path), key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert not current(tmp_path)


def test_a_file_that_is_not_pem_is_not_current(folder: Path) -> None:
    _write(folder / "onprem-db1-etcd.crt", b"not a certificate\n", 0o644)
    assert not current(folder)


def test_inputs_the_role_cannot_issue_are_refused(folder: Path) -> None:
    with pytest.raises(AnsibleFilterError, match=r"email:ops@example\.com"):
        current(folder, subject_alt_names=["email:ops@example.com"])
    with pytest.raises(AnsibleFilterError, match="codeSigning"):
        current(folder, extended_key_usage=["codeSigning"])
