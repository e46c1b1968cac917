"""Role moto_sqs on a node of its own (the lab's node image, on a podman network this test makes):
converge, idempotence, check mode, hardening, listening address, queues, drift repair, and the API's own
SQS adapter accepting the queues the role made (same attributes, so its CreateQueue is a no-op)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from puente.shell import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NODE = "pdrill-sqs1"
NETWORK = "pdrill-sqs"
SUBNET = "10.89.249.0/24"
ADDRESS = "10.89.249.41"
REGION = "eu-west-1"
QUEUE = "puente-shipments.fifo"
DLQ = "puente-shipments-dlq.fifo"
WHEELHOUSE = ROOT / ".cache" / "wheelhouse-moto"
ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "lab" / "containers.conf")}


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=ENV, cwd=ROOT, check=check, capture_output=True, text=True)


def playbook(inventory: Path, *extra: str) -> tuple[dict[str, int], str]:
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), "playbooks/cloud-queue.yml", *extra],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    m = re.search(rf"^{NODE}\s*:\s*(.*)$", out, re.M)
    assert proc.returncode == 0 and m, out[-6000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}, out


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from puente.lab import image, paths

    paths.APT_ARCHIVES.mkdir(parents=True, exist_ok=True)

    if not (WHEELHOUSE.is_dir() and any(WHEELHOUSE.glob("moto-*.whl"))):
        subprocess.run(
            [
                str(ROOT / ".venv/bin/pip"),
                "wheel",
                "-q",
                "-c",
                "constraints.txt",
                "moto[server]",
                "-w",
                str(WHEELHOUSE),
            ],
            cwd=ROOT,
            check=True,
        )
    tag, _ = image.ensure()
    podman("rm", "-f", NODE, check=False)
    if podman("network", "exists", NETWORK, check=False).returncode != 0:
        made = podman("network", "create", "--subnet", SUBNET, NETWORK, check=False)
        assert podman("network", "exists", NETWORK, check=False).returncode == 0, made.stdout + made.stderr
    podman(
        "run",
        "--detach",
        "--name",
        NODE,
        "--hostname",
        NODE,
        "--network",
        NETWORK,
        "--ip",
        ADDRESS,
        "--mac-address",
        "02:00:0a:59:f9:29",
        "--systemd",
        "always",
        # the lab's shared .deb pool (the image links it into apt's archives), as lab nodes have it
        "--volume",
        f"{paths.APT_ARCHIVES}:/var/cache/apt/lab-pool",
        tag,
    )
    for _ in range(60):
        state = podman("exec", NODE, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    inventory = tmp_path_factory.mktemp("inv") / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "sqs": {
                            "hosts": {
                                NODE: {
                                    "ansible_connection": "containers.podman.podman",
                                    "ansible_host": NODE,
                                    "moto_sqs_listen_address": ADDRESS,
                                    "moto_sqs_region": REGION,
                                    # an inventory sets it (the lab's overrides.yml): no role default
                                    "moto_sqs_wheelhouse_dir": str(ROOT / ".cache" / "wheelhouse-moto"),
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    try:
        yield inventory
    finally:
        podman("rm", "-f", NODE, check=False)
        podman("network", "rm", NETWORK, check=False)


@pytest.fixture(scope="module")
def converged(node: Path) -> Path:
    recap, out = playbook(node)
    assert recap["failed"] == 0, out[-4000:]
    return node


@pytest.fixture
def sqs(converged):
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=f"http://{ADDRESS}:5000",
        region_name=REGION,
        aws_access_key_id="lab",
        aws_secret_access_key="lab",
    )


def test_second_run_changes_nothing(converged: Path):
    recap, out = playbook(converged)
    assert recap["changed"] == 0, out[-4000:]


def test_check_mode_changes_nothing(converged: Path):
    recap, out = playbook(converged, "--check")
    assert recap["changed"] == 0, out[-4000:]


def test_service_runs_hardened_as_its_own_user(converged: Path):
    show = podman(
        "exec",
        NODE,
        "systemctl",
        "show",
        "moto-sqs",
        "-p",
        "ActiveState,User,ProtectSystem,NoNewPrivileges,CapabilityBoundingSet",
    ).stdout
    props = dict(line.split("=", 1) for line in show.strip().splitlines())
    assert props["ActiveState"] == "active"
    assert props["User"] == "moto-sqs"
    assert props["ProtectSystem"] == "strict"
    assert props["NoNewPrivileges"] == "yes"
    assert props["CapabilityBoundingSet"] == ""


def test_listens_on_the_node_address_only(converged: Path):
    out = podman("exec", NODE, "ss", "-Hltn", "sport = :5000").stdout
    # columns: State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
    local = [line.split()[3] for line in out.strip().splitlines()]
    assert local == [f"{ADDRESS}:5000"], out


def test_fifo_queue_with_redrive_to_its_dlq(sqs):
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=DLQ)["QueueUrl"], AttributeNames=["QueueArn", "FifoQueue"]
    )["Attributes"]
    attrs = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert dlq_arn["FifoQueue"] == "true"
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "false"
    assert attrs["VisibilityTimeout"] == "30"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn["QueueArn"],
        "maxReceiveCount": 5,
    }


def test_the_apis_adapter_accepts_the_queues_and_dedups(sqs, monkeypatch):
    from puente_api.brokers import OutboundMessage
    from puente_api.brokers.sqs import SQSBroker
    from puente_api.settings import BrokerURL

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lab")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lab")
    broker = SQSBroker(BrokerURL("sqs", queue=QUEUE, region=REGION, endpoint_url=f"http://{ADDRESS}:5000"))
    broker.declare()  # raises if the role's attributes differ from the adapter's
    message = OutboundMessage("drill-dedup-1", "shipment-1", b'{"n": 1}')
    broker.publish([message])
    broker.publish([message])  # a relay retry: SQS FIFO drops it (MessageDeduplicationId)
    got = broker.receive(10, 1)
    for d in got:
        broker.ack(d)
    broker.close()
    assert [d.message_id for d in got] == ["drill-dedup-1"]


def test_drift_is_put_back(converged: Path, sqs):
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99"})
    recap, out = playbook(converged)
    assert recap["changed"] == 1, out[-4000:]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "30"
    }
