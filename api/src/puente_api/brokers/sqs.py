"""SQS FIFO adapter (boto3): MessageGroupId per shipment, MessageDeduplicationId = outbox id, a
dead-letter queue wired with a RedrivePolicy. The same code runs against AWS and moto's server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from puente_api.brokers import MAX_DELIVERIES, Broker, BrokerError, Delivery, OutboundMessage
from puente_api.settings import BrokerURL

# Seconds a received message stays invisible to other workers; longer than one label takes.
VISIBILITY_TIMEOUT = 30
# SQS's limit for SendMessageBatch / ReceiveMessage.
_BATCH = 10
_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def dead_letter_name(queue: str) -> str:
    return queue.removesuffix(".fifo") + "-dlq.fifo"


class SQSBroker(Broker):
    def __init__(self, url: BrokerURL) -> None:
        self.queue = url.queue
        self.client: Any = boto3.client(
            "sqs",
            region_name=url.region,
            endpoint_url=url.endpoint_url,
            # Static keys only when the URL names one; otherwise boto3's credential chain decides.
            aws_access_key_id=url.username or None,
            aws_secret_access_key=url.password or None,
            config=botocore.config.Config(connect_timeout=3, read_timeout=25, retries={"max_attempts": 2}),
        )
        self._urls: dict[str, str] = {}

    def _url(self, name: str) -> str:
        if name not in self._urls:
            try:
                self._urls[name] = self.client.get_queue_url(QueueName=name)["QueueUrl"]
            except _ERRORS as exc:
                raise BrokerError(f"SQS queue {name} unreachable: {exc}") from exc
        return self._urls[name]

    def declare(self) -> None:
        """Create both queues (the cloud stack also declares them: same attributes, so this is a no-op)."""
        fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
        try:
            dlq = self.client.create_queue(QueueName=dead_letter_name(self.queue), Attributes=fifo)
            arn = self.client.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])
            redrive = {
                "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                "maxReceiveCount": MAX_DELIVERIES,
            }
            self.client.create_queue(
                QueueName=self.queue,
                Attributes={
                    **fifo,
                    "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
                    "RedrivePolicy": json.dumps(redrive),
                },
            )
        except _ERRORS as exc:
            raise BrokerError(f"SQS declare failed: {exc}") from exc

    def _send(self, queue: str, messages: list[OutboundMessage]) -> None:
        url = self._url(queue)
        for start in range(0, len(messages), _BATCH):
            chunk = messages[start : start + _BATCH]
            try:
                result = self.client.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {
                            "Id": str(i),
                            "MessageBody": m.body.decode(),
                            "MessageGroupId": m.group_id,
                            # SQS drops a second send with this id within 5 minutes (relay retries)
                            "MessageDeduplicationId": m.dedup_id or m.message_id,
                            "MessageAttributes": {
                                "message_id": {"DataType": "String", "StringValue": m.message_id}
                            },
                        }
                        for i, m in enumerate(chunk)
                    ],
                )
            except _ERRORS as exc:
                raise BrokerError(f"SQS send failed: {exc}") from exc
            if result.get("Failed"):
                raise BrokerError(f"SQS refused messages: {result['Failed']}")

    def publish(self, messages: list[OutboundMessage]) -> None:
        self._send(self.queue, messages)

    def _receive(self, queue: str, max_messages: int, wait_seconds: float, visibility: int) -> list[Delivery]:
        try:
            result = self.client.receive_message(
                QueueUrl=self._url(queue),
                MaxNumberOfMessages=max(1, min(max_messages, _BATCH)),
                WaitTimeSeconds=int(min(20, max(0, wait_seconds))),
                VisibilityTimeout=visibility,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount", "MessageGroupId"],
            )
        except _ERRORS as exc:
            raise BrokerError(f"SQS receive failed: {exc}") from exc
        out = []
        for m in result.get("Messages", []):
            attrs = m.get("MessageAttributes", {})
            message_id = attrs.get("message_id", {}).get("StringValue", "")
            count = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            group = m.get("Attributes", {}).get("MessageGroupId", "")
            handle = (m["ReceiptHandle"], group, queue)
            out.append(Delivery(message_id, m["Body"].encode(), count, handle, group_id=group))
        return out

    def receive(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        return self._receive(self.queue, max_messages, wait_seconds, VISIBILITY_TIMEOUT)

    def ack(self, delivery: Delivery) -> None:
        try:
            self.client.delete_message(
                QueueUrl=self._url(delivery.handle[2]), ReceiptHandle=delivery.handle[0]
            )
        except _ERRORS as exc:
            raise BrokerError(f"SQS delete failed: {exc}") from exc

    def reject(self, delivery: Delivery, requeue: bool) -> None:
        try:
            if not requeue:
                # SQS has no "dead-letter now": move it ourselves, then delete the original.
                self._send(
                    dead_letter_name(self.queue),
                    [OutboundMessage(delivery.message_id, delivery.handle[1] or "dead", delivery.body)],
                )
                self.client.delete_message(QueueUrl=self._url(self.queue), ReceiptHandle=delivery.handle[0])
            else:
                self.client.change_message_visibility(
                    QueueUrl=self._url(delivery.handle[2]),
                    ReceiptHandle=delivery.handle[0],
                    VisibilityTimeout=0,
                )
        except _ERRORS as exc:
            raise BrokerError(f"SQS reject failed: {exc}") from exc

    def dead_letters(self, max_messages: int = 10) -> list[Delivery]:
        # visibility 0: a peek, the messages stay available
        return self._receive(dead_letter_name(self.queue), max_messages, 1, 0)

    def dead_letter_count(self) -> int:
        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self._url(dead_letter_name(self.queue)),
                AttributeNames=["ApproximateNumberOfMessages"],
            )
        except _ERRORS as exc:
            raise BrokerError(f"SQS dead-letter queue unreachable: {exc}") from exc
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    def receive_dead_letters(self, max_messages: int) -> list[Delivery]:
        return self._receive(dead_letter_name(self.queue), max_messages, 0, VISIBILITY_TIMEOUT)

    def redrive(self, delivery: Delivery) -> None:
        self._send(
            self.queue,
            [
                OutboundMessage(
                    delivery.message_id,
                    delivery.group_id or "redriven",
                    delivery.body,
                    dedup_id=f"{delivery.message_id}-redrive-{uuid.uuid4().hex[:12]}",
                )
            ],
        )
        self.ack(delivery)

    def ping(self) -> None:
        try:
            self.client.get_queue_attributes(QueueUrl=self._url(self.queue), AttributeNames=["QueueArn"])
        except _ERRORS as exc:
            self._urls.clear()
            raise BrokerError(f"SQS queue {self.queue} unreachable: {exc}") from exc

    def close(self) -> None:
        self.client.close()
