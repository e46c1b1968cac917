"""RabbitMQ (role rabbitmq): no default account, and AMQP either over TLS or confined to the node."""

from __future__ import annotations

import ipaddress
import json

from puente.audit import control


@control(
    id="PUENTE-MQ-01", title="RabbitMQ has no `guest` account", impact=0.8,
    rationale="""`guest`/`guest` is the best-known credential of the broker; with it a local process (or any
    client, if loopback_users is changed) reads and injects messages.""",
    refs={"nist": ["IA-5", "AC-2", "CM-6"]}, groups=["rabbitmq"],
)
def test_no_guest_user(host):
    listed = json.loads(host.check_output("rabbitmqctl list_users --silent --formatter json"))
    users = [u["user"] for u in listed]
    assert users, "rabbitmqctl lists no user at all"
    assert "guest" not in users, "the guest user exists"


@control(
    id="PUENTE-MQ-02", title="AMQP is served over TLS, or only on loopback", impact=0.7,
    rationale="""Plain AMQP carries the broker password and every message in clear across the network; a
    plaintext listener is acceptable only where nothing but the node itself can reach it.""",
    refs={"nist": ["SC-8", "SC-8(1)"]}, groups=["rabbitmq"],
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
