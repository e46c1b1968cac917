"""The queue settings the program declares, replayed against moto: FIFO de-duplication within SQS's
5-minute window, and the dead-letter queue after maxReceiveCount receives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import moto.sqs.models
import pytest
from moto import mock_aws

from puente.pulumikit import Recording

# Pulumi input name -> SQS attribute name (only those the program sets).
ATTRIBUTES = {
    "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "deduplicationScope": "DeduplicationScope",
    "fifoThroughputLimit": "FifoThroughputLimit",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "redrivePolicy": "RedrivePolicy",
}
NOT_ATTRIBUTES = {"name", "tags", "tagsAll", "arn"}


def _attributes(inputs: dict[str, Any]) -> dict[str, str]:
    unknown = set(inputs) - set(ATTRIBUTES) - NOT_ATTRIBUTES
    assert not unknown, f"the replay does not know these queue settings yet: {unknown}"
    out = {}
    for key, attr in ATTRIBUTES.items():
        if key in inputs:
            value = inputs[key]
            out[attr] = (
                str(value).lower()
                if isinstance(value, bool)
                else str(int(value))
                if isinstance(value, float)
                else str(value)
            )
    return out


class Clock:
    """moto's SQS clock, made deterministic: it starts now and advances 1 ms per reading, plus what a test
    adds to `offset_ms`. Real time would make "within 5 minutes" depend on how loaded the machine is."""

    def __init__(self) -> None:
        self.offset_ms = 0.0
        self._start = moto.sqs.models.unix_time_millis()
        self._ticks = 0

    def __call__(self) -> float:
        self._ticks += 1  # moto compares visibility with `>`: time must move between readings
        return self._start + self._ticks + self.offset_ms


@pytest.fixture
def sqs(dev: Recording, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, dict[str, str], Clock]]:
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(var, value)
    clock = Clock()
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", clock)
    queues = dev.of_type("aws:sqs/queue:Queue")
    # The DLQ first: the main queue's recorded redrive policy names its ARN.
    queues.sort(key=lambda q: "redrivePolicy" in q.inputs)
    with mock_aws():
        client = boto3.client("sqs", region_name=dev.outputs["region"])
        urls = {}
        for q in queues:
            urls[q.inputs["name"]] = client.create_queue(
                QueueName=q.inputs["name"], Attributes=_attributes(q.inputs)
            )["QueueUrl"]
        yield client, urls, clock


def _receive(client: Any, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    # WaitTimeSeconds=0: the queues long-poll 20 s by default, and here emptiness is the answer.
    return client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"], **kwargs
    ).get("Messages", [])


def test_recorded_settings_are_what_sqs_keeps(sqs: tuple[Any, dict[str, str], Clock]) -> None:
    client, urls, _ = sqs
    attrs = client.get_queue_attributes(QueueUrl=urls["puente-dev-events.fifo"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attrs["FifoQueue"] == "true" and attrs["ContentBasedDeduplication"] == "true"
    assert attrs["KmsMasterKeyId"].startswith("arn:aws:kms:")
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].endswith(":puente-dev-events-dlq.fifo")


def test_explicit_deduplication_id_drops_repeats_within_five_minutes(
    sqs: tuple[Any, dict[str, str], Clock],
) -> None:
    client, urls, clock = sqs
    url = urls["puente-dev-events.fifo"]
    for body in ("first", "retry of the same outbox row"):
        client.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId="shipment-1", MessageDeduplicationId="outbox-42"
        )
    clock.offset_ms = 299_000
    client.send_message(
        QueueUrl=url,
        MessageBody="still a repeat",
        MessageGroupId="shipment-1",
        MessageDeduplicationId="outbox-42",
    )
    assert [m["Body"] for m in _receive(client, url)] == ["first"]


def test_repeats_after_five_minutes_are_new_messages(sqs: tuple[Any, dict[str, str], Clock]) -> None:
    client, urls, clock = sqs
    url = urls["puente-dev-events.fifo"]
    client.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="outbox-7")
    clock.offset_ms = 301_000
    client.send_message(QueueUrl=url, MessageBody="b", MessageGroupId="g", MessageDeduplicationId="outbox-7")
    assert [m["Body"] for m in _receive(client, url)] == ["a", "b"]


def test_content_based_deduplication_without_an_id(sqs: tuple[Any, dict[str, str], Clock]) -> None:
    client, urls, _ = sqs
    url = urls["puente-dev-events.fifo"]
    for _ in range(3):
        client.send_message(QueueUrl=url, MessageBody='{"event":"created","id":1}', MessageGroupId="g")
    client.send_message(QueueUrl=url, MessageBody='{"event":"created","id":2}', MessageGroupId="g")
    assert len(_receive(client, url)) == 2


def test_message_moves_to_the_dead_letter_queue_after_max_receive_count(
    dev: Recording, sqs: tuple[Any, dict[str, str], Clock]
) -> None:
    client, urls, _ = sqs
    url, dlq = urls["puente-dev-events.fifo"], urls["puente-dev-events-dlq.fifo"]
    main = next(q for q in dev.of_type("aws:sqs/queue:Queue") if "redrivePolicy" in q.inputs)
    max_receives = json.loads(main.inputs["redrivePolicy"])["maxReceiveCount"]
    client.send_message(QueueUrl=url, MessageBody="poison", MessageGroupId="g", MessageDeduplicationId="p")
    for attempt in range(1, max_receives + 1):
        # A worker that fails: receives, never deletes; VisibilityTimeout=0 makes it visible again at once.
        (message,) = _receive(client, url, VisibilityTimeout=0)
        assert message["Attributes"]["ApproximateReceiveCount"] == str(attempt)
    assert _receive(client, url) == []
    assert [m["Body"] for m in _receive(client, dlq)] == ["poison"]
