"""One interface over the site's message broker: RabbitMQ on-prem, SQS FIFO in the cloud.

Both adapters give the same guarantees to the relay and the worker:

* ``publish`` returns only once the broker has taken responsibility for every message (RabbitMQ
  publisher confirms; SQS's successful SendMessageBatch) and raises otherwise, so the relay marks an
  outbox row published only after the broker acknowledged it (at-least-once);
* a message carries ``message_id`` = the outbox row's id, the worker's de-duplication key (SQS also
  uses it as MessageDeduplicationId);
* ``reject(requeue=False)`` sends a message the worker can never process to the dead-letter queue;
  messages that keep failing reach it by themselves after ``MAX_DELIVERIES`` attempts;
* ``release`` hands back every delivery the process holds (the rest of a failed batch, and on RabbitMQ
  what the consumer's prefetch brought in) at once, so another worker can take them while this one backs
  off; each counts as one more delivery towards ``MAX_DELIVERIES``;
* dead letters stay in the dead-letter queue until ``redrive`` puts them back on the queue (the worker
  only reads them, to mark their shipments' labels failed).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from puente_api.settings import BrokerURL

# A message delivered this many times without being acknowledged goes to the dead-letter queue
# (RabbitMQ quorum queue x-delivery-limit, SQS RedrivePolicy maxReceiveCount).
MAX_DELIVERIES = 5


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    group_id: str  # ordering key: all messages of one shipment (SQS MessageGroupId)
    body: bytes
    # SQS MessageDeduplicationId when it must differ from message_id (a redriven dead letter: SQS drops
    # a second message with the first one's id for 5 minutes)
    dedup_id: str = ""


@dataclass(frozen=True)
class Delivery:
    message_id: str
    body: bytes
    delivery_count: int
    handle: Any  # adapter-specific (delivery tag, receipt handle)
    group_id: str = ""
    # A dead letter's cause as the broker recorded it (RabbitMQ x-death: "rejected", "delivery_limit");
    # empty when the broker records none (SQS).
    death_reason: str = ""


class BrokerError(RuntimeError):
    """The broker refused or did not confirm a message, or cannot be reached."""


class Broker(abc.ABC):
    @abc.abstractmethod
    def declare(self) -> None:
        """Create the queue, the dead-letter queue and their wiring; idempotent."""

    @abc.abstractmethod
    def publish(self, messages: list[OutboundMessage]) -> None:
        """Return when the broker confirmed every message; raise BrokerError otherwise."""

    @abc.abstractmethod
    def receive(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        """Up to ``max_messages`` deliveries, waiting at most ``wait_seconds`` for the first."""

    @abc.abstractmethod
    def ack(self, delivery: Delivery) -> None: ...

    @abc.abstractmethod
    def reject(self, delivery: Delivery, requeue: bool) -> None:
        """requeue=True: deliver again later; requeue=False: to the dead-letter queue now."""

    def release(self, deliveries: list[Delivery]) -> None:
        """Requeue ``deliveries`` (received, not settled) and anything else this process holds, at once."""
        for d in deliveries:
            self.reject(d, requeue=True)

    @abc.abstractmethod
    def dead_letters(self, max_messages: int = 10) -> list[Delivery]:
        """Messages in the dead-letter queue (for operators and tests); acknowledges nothing."""

    @abc.abstractmethod
    def dead_letter_count(self) -> int:
        """How many messages wait in the dead-letter queue (the broker's count; SQS's is approximate)."""

    @abc.abstractmethod
    def receive_dead_letters(self, max_messages: int) -> list[Delivery]:
        """Take up to ``max_messages`` dead letters; each must then go to :meth:`redrive` or be
        handed back with :meth:`release`."""

    @abc.abstractmethod
    def redrive(self, delivery: Delivery) -> None:
        """Publish a dead letter taken by :meth:`receive_dead_letters` to the queue again (confirmed),
        then remove it from the dead-letter queue."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise BrokerError unless the queue is reachable."""

    @abc.abstractmethod
    def close(self) -> None: ...


def connect(url: BrokerURL) -> Broker:
    if url.is_amqp:
        from puente_api.brokers.rabbitmq import RabbitMQBroker

        return RabbitMQBroker(url)
    from puente_api.brokers.sqs import SQSBroker

    return SQSBroker(url)
