"""RabbitMQ (role rabbitmq): no default account, AMQP either over TLS or confined to the node, and no plain
AMQP at all from the network: only AMQPS, with a certificate clients can verify.

The probes of PUENTE-MQ-03 run ON the broker against its own addresses, with the node's Python/OpenSSL."""

from __future__ import annotations

import ipaddress
import json

from puente.audit import control


@control(
    id="PUENTE-MQ-01",
    title="RabbitMQ has no `guest` account",
    impact=0.8,
    rationale="""`guest`/`guest` is the best-known credential of the broker; with it a local process (or any
    client, if loopback_users is changed) reads and injects messages.""",
    refs={"nist": ["IA-5", "AC-2", "CM-6"]},
    groups=["rabbitmq"],
)
def test_no_guest_user(host):
    listed = json.loads(host.check_output("rabbitmqctl list_users --silent --formatter json"))
    users = [u["user"] for u in listed]
    assert users, "rabbitmqctl lists no user at all"
    assert "guest" not in users, "the guest user exists"


@control(
    id="PUENTE-MQ-02",
    title="AMQP is served over TLS, or only on loopback",
    impact=0.7,
    rationale="""Plain AMQP carries the broker password and every message in clear across the network; a
    plaintext listener is acceptable only where nothing but the node itself can reach it.""",
    refs={"nist": ["SC-8", "SC-8(1)"]},
    groups=["rabbitmq"],
)
def test_amqp_tls_or_local(host):
    listeners = json.loads(host.check_output("rabbitmq-diagnostics listeners --silent --formatter json"))
    amqp = [entry for entry in listeners.get("listeners", listeners) if entry.get("protocol") == "amqp"]
    exposed = []
    for entry in amqp:
        address = str(entry.get("interface", ""))
        try:
            loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            exposed.append(f"{address}:{entry.get('port')}")
    assert not exposed, f"plaintext AMQP reachable from the network on {', '.join(exposed)}"


# Argv: the broker's non-loopback addresses. For each: a plain-AMQP client (the protocol header on 5672,
# then on every AMQPS port) gets no AMQP Connection.Start, and the AMQPS port completes a TLS handshake
# verified against the node's CA for that very address.
PLAIN_AND_TLS = r"""
import json, socket, ssl, sys
ports, ca, addresses = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
HEADER = b"AMQP\x00\x00\x09\x01"
out = []
for address in addresses:
    for port in [5672] + ports:
        try:
            with socket.create_connection((address, port), timeout=3) as s:
                s.settimeout(3)
                s.sendall(HEADER)
                answer = s.recv(64)
            # a Connection.Start frame: type 1, channel 0, class 10 method 10
            plain = answer[:1] == b"\x01" and answer[7:11] == b"\x00\x0a\x00\x0a"
            out.append({"address": address, "port": port, "plain_amqp": plain, "answer": answer[:8].hex()})
        except OSError as exc:
            out.append({"address": address, "port": port, "plain_amqp": False, "error": type(exc).__name__})
    for port in ports:
        ctx = ssl.create_default_context(cafile=ca)
        try:
            with socket.create_connection((address, port), timeout=3) as raw:
                with ctx.wrap_socket(raw, server_hostname=address) as tls:
                    out.append({"address": address, "port": port, "tls": tls.version()})
        except (OSError, ssl.SSLError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            out.append({"address": address, "port": port, "tls": None, "error": error})
print(json.dumps(out))
"""


@control(
    id="PUENTE-MQ-03",
    impact=0.7,
    title="RabbitMQ refuses plain AMQP from the network; AMQPS with a verifiable certificate",
    rationale="""Plain AMQP carries the broker password and every message in clear. Off the node, the broker
    must speak AMQP only inside TLS, with a certificate the API verifies (chain and address), so that a client
    configured with amqps:// cannot be served in clear or by an impostor.""",
    refs={"nist": ["SC-8", "SC-8(1)", "SC-23"]},
    groups=["rabbitmq"],
)
def test_plain_amqp_refused_from_the_network(host):
    listeners = json.loads(host.check_output("rabbitmq-diagnostics listeners --silent --formatter json"))
    entries = listeners.get("listeners", listeners)
    ports = sorted({int(e["port"]) for e in entries if e.get("protocol") == "amqp/ssl"})
    assert ports, "no AMQPS listener"
    addresses = [
        a for a in host.check_output("hostname -I").split() if not ipaddress.ip_address(a).is_loopback
    ]
    assert addresses, "the node has no network address"
    found = json.loads(
        host.check_output(
            "python3 -c %s %s %s %s",
            PLAIN_AND_TLS,
            json.dumps(ports),
            "/etc/rabbitmq/tls/ca.crt",
            " ".join(addresses),
        )
    )
    plain = [f"{r['address']}:{r['port']}" for r in found if r.get("plain_amqp")]
    assert not plain, f"plain AMQP answered on {', '.join(plain)}"
    unverified = [
        f"{r['address']}:{r['port']} ({r.get('error')})" for r in found if "tls" in r and not r["tls"]
    ]
    assert not unverified, f"AMQPS not verifiable: {'; '.join(unverified)}"
