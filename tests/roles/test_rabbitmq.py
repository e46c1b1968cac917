"""Role `rabbitmq`: the message broker on the lab's rabbitmq group (onprem-mq1).

What the role promises: rabbitmq-server running and enabled; AMQPS only (TLS on 5671 with a certificate
of the lab CA for the node's address, verified by the clients), no plain AMQP listener, no management
listener; an absolute memory alarm; no `guest`; the API's vhost (quorum by default) and user
with permissions on exactly its own exchanges and queues; the API's queue a quorum queue dead-lettering
(at-least-once) into the dead-letter queue; a message published as the API user reaches the queue and,
rejected, the dead-letter queue, where the API user reads it back; AMQPS from anywhere but the API nodes
of its site is dropped, and plain AMQP from anywhere (the API nodes included); a second run changes
nothing; bad input stops the play before any change.

AMQP clients run in the network namespace of a lab node (``nsenter``), so the broker and its firewall
see a real API node (or a non-API node) connecting - never the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

REPO = Path(__file__).resolve().parents[2]
MQ = "onprem-mq1"
MQ_IP = "10.89.1.41"
API_NODE = "onprem-api1"
OTHER_NODE = "onprem-db1"
OTHER_SITE_API_NODE = "cloud-api1"  # its API speaks SQS: no reason to reach this broker
VHOST = "puente"
USER = "puente_api"
# The API adapter's names (api/src/puente_api/brokers/rabbitmq.py), declared by the role too.
EXCHANGE, ROUTING_KEY = "puente.shipments", "shipment.created"
QUEUE, DLX, DLQ = "puente.labels", "puente.dlx", "puente.labels.dlq"
WATERMARK_BYTES = 256 * 1024 * 1024  # inventories/lab/group_vars/lab/overrides.yml: 256MiB
AMQPS, AMQP = 5671, 5672
LAB_CA = REPO / ".cache" / "lab" / "ca" / "ca.crt"  # what the API nodes verify the broker with

# Runs inside a node's network namespace with the toolkit's Python (pika is pinned for the API).
# argv[1] = scenario; env PUENTE_TEST_PASSWORD; prints one JSON object.
AMQP_CLIENT = r"""
import json, os, ssl, sys, time, uuid
import pika, pika.exceptions

scenario, host, vhost, user = sys.argv[1:5]
password = os.environ.get("PUENTE_TEST_PASSWORD", "")

def connect(u, p):
    # AMQPS as the API connects: the broker's certificate verified against the lab CA, for its address
    ca = ssl.create_default_context(cafile=os.environ["PUENTE_TEST_CA"])
    tls = pika.SSLOptions(ca, server_hostname=host)
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=host, port=5671, virtual_host=vhost, credentials=pika.PlainCredentials(u, p), ssl_options=tls,
        socket_timeout=5, connection_attempts=1, blocked_connection_timeout=10))

def drain(ch, queue, wanted_id, seconds, reject):
    # Consume until our message shows up; everything else goes back to the queue untouched.
    found, others = None, []
    ch.basic_qos(prefetch_count=200)
    deadline = time.monotonic() + seconds
    for method, props, body in ch.consume(queue, inactivity_timeout=1):
        if method is not None:
            if props.message_id == wanted_id:
                found = {"headers": props.headers or {}, "body": body.decode()}
                if reject:
                    ch.basic_reject(method.delivery_tag, requeue=False)
                else:
                    ch.basic_ack(method.delivery_tag)
                break
            others.append(method.delivery_tag)
        if time.monotonic() > deadline:
            break
    for tag in others:
        ch.basic_nack(tag, requeue=True)
    ch.cancel()
    return found

if scenario == "roundtrip":
    conn = connect(user, password)
    ch = conn.channel()
    ch.confirm_delivery()
    message_id = "role-test-" + uuid.uuid4().hex
    # Not a label request: if the API's worker takes it first, it dead-letters it at once too.
    ch.basic_publish(sys.argv[5], sys.argv[6], b"puente role test: not a label request",
                     pika.BasicProperties(message_id=message_id, delivery_mode=2), mandatory=True)
    in_queue = drain(ch, sys.argv[7], message_id, 10, reject=True)
    dead = drain(ch, sys.argv[8], message_id, 30, reject=False)
    conn.close()
    print(json.dumps({"seen_in_queue": in_queue is not None, "dead": dead}, default=str))
elif scenario == "declare-foreign":
    conn = connect(user, password)
    try:
        conn.channel().queue_declare("puente.not-the-api", durable=True)
        print(json.dumps({"refused": False}))
    except pika.exceptions.ChannelClosedByBroker as exc:
        print(json.dumps({"refused": True, "code": exc.reply_code, "text": exc.reply_text}))
elif scenario == "guest":
    try:
        connect("guest", "guest").close()
        print(json.dumps({"login": True}))
    except pika.exceptions.AMQPError as exc:
        print(json.dumps({"login": False, "error": type(exc).__name__}))
elif scenario == "tcp":
    import socket
    try:
        socket.create_connection((host, int(sys.argv[5])), timeout=3).close()
        print(json.dumps({"connected": True}))
    except OSError as exc:
        print(json.dumps({"connected": False, "error": type(exc).__name__}))
"""


def in_node_netns(node_name: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run AMQP_CLIENT with ARGS inside NODE's network namespace; its JSON answer."""
    pid = subprocess.run(
        ["podman", "inspect", "-f", "{{.State.Pid}}", node_name],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    argv = ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", AMQP_CLIENT, *args]
    env = {**os.environ, "PUENTE_TEST_CA": str(LAB_CA), **(env or {})}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, f"AMQP client in {node_name} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def api_password() -> str:
    out = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-vault"), "view", "--vault-password-file",
         "inventories/lab/vault-password.lab-only", "inventories/lab/group_vars/lab/vault.yml"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return str(yaml.safe_load(out)["vault_api_broker_password"])


def ctl_json(node: Callable, *args: str) -> list | dict:
    out = node(MQ).check_output("rabbitmqctl -q " + " ".join(args) + " --formatter json")
    return json.loads(out[min(i for i in (out.find("["), out.find("{")) if i >= 0) :])


def test_running_and_enabled(node: Callable) -> None:
    svc = node(MQ).service("rabbitmq-server")
    if not svc.is_running:
        print(node(MQ).run("journalctl -u rabbitmq-server --no-pager -n 50").stdout)
    assert svc.is_running and svc.is_enabled


def test_listeners_only_where_intended(node: Callable) -> None:
    status = ctl_json(node, "status")
    listeners = {(item["protocol"], item["interface"], item["port"]) for item in status["listeners"]}
    # AMQPS on the node's address only; no plain AMQP, no management/HTTP listener.
    # Inter-node port 25672 listens (Erlang distribution, needed by the CLI) but the firewall admits
    # it only from other brokers, and there are none in the lab.
    # The Prometheus plugin's listener (metrics only, for the monitoring hosts): `status` names it [::]
    # whatever prometheus.tcp.ip says, so where it listens is read from the socket itself.
    other = {lst for lst in listeners if lst[0] not in ("clustering", "http/prometheus")}
    assert other == {("amqp/ssl", MQ_IP, AMQPS)}, listeners
    assert "15672" not in node(MQ).check_output("ss -Hltn")
    metrics = {line.split()[3] for line in node(MQ).check_output("ss -Hltn sport = :15692").splitlines()}
    assert metrics == {f"{MQ_IP}:15692"}, metrics


def test_management_plugin_off(node: Callable) -> None:
    enabled = node(MQ).check_output("rabbitmq-plugins -q list --enabled --minimal")
    assert "rabbitmq_management" not in enabled


def test_memory_alarm_is_absolute(node: Callable) -> None:
    status = ctl_json(node, "status")
    assert status["vm_memory_high_watermark_setting"] == {"absolute": WATERMARK_BYTES}
    assert status["vm_memory_high_watermark_limit"] == WATERMARK_BYTES
    assert status["alarms"] == []


def test_config_file_modes(node: Callable) -> None:
    for path in ("/etc/rabbitmq/rabbitmq.conf", "/etc/rabbitmq/puente-definitions.json"):
        f = node(MQ).file(path)
        assert (f.user, f.group, f.mode) == ("root", "rabbitmq", 0o640), path
    conf = node(MQ).file("/etc/rabbitmq/rabbitmq.conf").content_string
    assert "listeners.tcp = none" in conf and f"listeners.ssl.default = {MQ_IP}:{AMQPS}" in conf
    key = node(MQ).file("/etc/rabbitmq/tls/server.key")
    assert (key.user, key.group, key.mode) == ("root", "rabbitmq", 0o640)


def test_guest_absent_and_only_the_api_user(node: Callable) -> None:
    users = {u["user"]: u["tags"] for u in ctl_json(node, "list_users")}
    assert users == {USER: []}


def test_vhost_defaults_to_quorum_and_default_vhost_removed(node: Callable) -> None:
    vhosts = {
        v["name"]: v["default_queue_type"]
        for v in ctl_json(node, "list_vhosts", "name", "default_queue_type")
    }
    assert vhosts == {VHOST: "quorum"}


def test_api_user_permissions_are_exactly_its_objects(node: Callable) -> None:
    perms = ctl_json(node, "list_user_permissions", USER)
    names = r"^(puente\.shipments|puente\.labels|puente\.dlx|puente\.labels\.dlq)$"
    assert perms == [{"vhost": VHOST, "configure": names, "write": names, "read": names}]


def test_queues_are_quorum_and_the_api_queue_dead_letters(node: Callable) -> None:
    queues = {
        q["name"]: q for q in ctl_json(node, "list_queues", "-p", VHOST, "name", "type", "durable", "policy")
    }
    assert {n: (q["type"], q["durable"]) for n, q in queues.items() if n in (QUEUE, DLQ)} == {
        QUEUE: ("quorum", True),
        DLQ: ("quorum", True),
    }
    assert queues[QUEUE]["policy"] == "puente-api-queues"
    policy = next(p for p in ctl_json(node, "list_policies", "-p", VHOST) if p["name"] == "puente-api-queues")
    definition = (
        policy["definition"] if isinstance(policy["definition"], dict) else json.loads(policy["definition"])
    )
    assert definition["dead-letter-exchange"] == DLX
    assert definition["dead-letter-strategy"] == "at-least-once"
    assert definition["overflow"] == "reject-publish"  # at-least-once dead-lettering needs it


def test_bindings(node: Callable) -> None:
    bindings = {
        (b["source_name"], b["destination_name"], b["routing_key"])
        for b in ctl_json(
            node, "list_bindings", "-p", VHOST, "source_name", "destination_name", "routing_key"
        )
    }
    assert {(EXCHANGE, QUEUE, ROUTING_KEY), (DLX, DLQ, DLQ)} <= bindings


def test_message_published_as_api_user_is_dead_lettered_and_read_back(api_password: str) -> None:
    result = in_node_netns(
        API_NODE, "roundtrip", MQ_IP, VHOST, USER, EXCHANGE, ROUTING_KEY, QUEUE, DLQ,
        env={"PUENTE_TEST_PASSWORD": api_password},
    )  # fmt: skip
    dead = result["dead"]
    assert dead is not None, f"the message never reached {DLQ}: {result}"
    # Whoever rejected it (this test, or the API's worker that got it first), it went through the DLX.
    death = dead["headers"]["x-death"][0]
    assert (death["queue"], death["exchange"], death["reason"]) == (QUEUE, EXCHANGE, "rejected"), dead


def test_api_user_cannot_declare_other_queues(api_password: str) -> None:
    result = in_node_netns(
        API_NODE, "declare-foreign", MQ_IP, VHOST, USER, env={"PUENTE_TEST_PASSWORD": api_password}
    )
    assert result["refused"] and result["code"] == 403, result


def test_guest_cannot_log_in() -> None:
    result = in_node_netns(API_NODE, "guest", MQ_IP, VHOST, "guest")
    assert result == {"login": False, "error": "ProbableAuthenticationError"}, result


@pytest.mark.parametrize(
    ("client", "port", "reachable"),
    [
        (API_NODE, AMQPS, True),
        (OTHER_NODE, AMQPS, False),
        (OTHER_SITE_API_NODE, AMQPS, False),
        (API_NODE, AMQP, False),  # plain AMQP from nowhere, not even the API nodes
    ],
)
def test_amqps_only_and_only_from_api_nodes(client: str, port: int, reachable: bool) -> None:
    result = in_node_netns(client, "tcp", MQ_IP, VHOST, USER, str(port))
    assert result["connected"] is reachable, result


# Idempotence and check mode of this tier are proven by tests/roles/test_site_idempotence.py (a second
# site.yml run with changed=0 on every host, and --check --diff with no change): running the tier's
# playbook again here would repeat them at a minute or more of CI time each.


def test_wrong_input_type_stops_before_any_change(run_playbook) -> None:
    recap = run_playbook("messaging.yml", "-e", "rabbitmq_amqp_port=not-a-port")
    assert recap.returncode != 0
    assert recap[MQ]["failed"] == 1 and recap[MQ]["changed"] == 0, recap.output[-4000:]
    assert "rabbitmq_amqp_port" in recap.output
