"""One interface over the site's message broker: RabbitMQ on-prem, SQS FIFO in the cloud.

Both adapters give the same guarantees to the relay and the worker:

* ``publish`` returns only once the broker has taken responsibility for every message (RabbitMQ
  publisher confirms; SQS's successful SendMessageBatch) and raises otherwise, so the relay marks an
  outbox row published only after the broker acknowledged it (at-least-once);
* a message carries ``message_id`` = the outbox row's id, the worker's de-duplication key (SQS also
  uses it as MessageDeduplicationId);
* ``reject(requeue=False)`` sends a message the worker can never process to the dead-letter queue;
  messages that keep failing reach it by themselves after ``MAX_DELIVERIES`` attempts.
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


@dataclass(frozen=True)
class Delivery:
    message_id: str
    body: bytes
    delivery_count: int
    handle: Any  # adapter-specific (delivery tag, receipt handle)


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

    @abc.abstractmethod
    def dead_letters(self, max_messages: int = 10) -> list[Delivery]:
        """Messages in the dead-letter queue (for operators and tests); acknowledges nothing."""

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
