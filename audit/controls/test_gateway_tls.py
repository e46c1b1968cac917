"""TLS on the gateway (role gateway, nginx): protocol versions offered and the certificate served.

The probes run ON the gateway against its own listener, with the node's Python/OpenSSL, so they see what
any client sees and need nothing on the auditor's machine.
"""

from __future__ import annotations

import json
import ssl
import time

import pytest
from audit_policy import CERT_MIN_DAYS_LEFT

from puente.audit import control

HANDSHAKE = """
import socket, ssl, sys
version = getattr(ssl.TLSVersion, sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_ciphers("ALL:@SECLEVEL=0")  # let the CLIENT offer old versions: the server must refuse them
ctx.minimum_version = ctx.maximum_version = version
try:
    with socket.create_connection(("127.0.0.1", 443), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            print("accepted", tls.version(), tls.cipher()[0])
except (ssl.SSLError, ConnectionError) as exc:
    print("refused", type(exc).__name__, exc)
"""

SERVED_CERT = """
import json, ssl, tempfile
pem = ssl.get_server_certificate(("127.0.0.1", 443))
with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
    f.write(pem); f.flush()
    info = ssl._ssl._test_decode_cert(f.name)
print(json.dumps(info))
"""


@control(
    id="PUENTE-TLS-01",
    title="The gateway offers TLS 1.2 and 1.3 only",
    impact=0.7,
    rationale="""TLS 1.0 and 1.1 are deprecated (RFC 8996) and allow downgrade attacks; clients of the API
    all speak TLS 1.2+.""",
    refs={"nist": ["SC-8", "SC-8(1)", "SC-13"]},
    groups=["gateways"],
)
@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("TLSv1", "refused"),
        ("TLSv1_1", "refused"),
        ("TLSv1_2", "accepted"),
        ("TLSv1_3", "accepted"),
    ],
)
def test_gateway_tls_versions(host, version: str, expected: str):
    result = host.check_output("python3 -c %s %s", HANDSHAKE, version)
    assert result.split()[0] == expected, f"{version}: {result}"


@control(
    id="PUENTE-TLS-02",
    title="The gateway's certificate is valid and not about to expire",
    impact=0.7,
    rationale=f"""An expired certificate stops every client; one expiring within {CERT_MIN_DAYS_LEFT} days
    needs renewing now. The served certificate must name the host clients connect to.""",
    refs={"nist": ["SC-17", "SC-12", "IA-5(2)"]},
    groups=["gateways"],
)
def test_gateway_certificate(host, evidence):
    info = json.loads(host.check_output("python3 -c %s", SERVED_CERT))
    sans = [value for kind, value in info.get("subjectAltName", ()) if kind == "DNS"]
    evidence.record(
        "served certificate",
        f"subject {info.get('subject')}\nSAN {sans}\n"
        f"notBefore {info['notBefore']}\nnotAfter {info['notAfter']}",
    )
    now = time.time()
    assert ssl.cert_time_to_seconds(info["notBefore"]) <= now, f"not valid before {info['notBefore']}"
    days_left = int((ssl.cert_time_to_seconds(info["notAfter"]) - now) // 86400)
    assert days_left >= CERT_MIN_DAYS_LEFT, f"certificate expires in {days_left} days ({info['notAfter']})"
    assert sans, "certificate has no DNS subjectAltName (clients match names against SANs only)"


@control(
    id="PUENTE-TLS-03",
    title="The gateway's private key is readable by root only",
    impact=0.8,
    rationale="Anyone who reads the key can impersonate the API to its clients.",
    refs={"nist": ["SC-12", "AC-3"]},
    groups=["gateways"],
)
def test_gateway_key_mode(host):
    conf = host.check_output(
        "nginx -T 2>/dev/null | awk '$1 == \"ssl_certificate_key\" {print $2}' | tr -d ';' | sort -u"
    )
    assert conf, "nginx has no ssl_certificate_key"
    for path in conf.splitlines():
        key = host.file(path)
        assert key.user == "root" and key.mode & 0o077 == 0, f"{path}: {key.user} mode {key.mode:o}"
