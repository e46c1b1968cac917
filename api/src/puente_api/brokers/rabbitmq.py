"""RabbitMQ adapter (pika): publisher confirms, a durable quorum queue, a dead-letter exchange.

The worker consumes with ``basic.consume`` and a prefetch: the broker pushes up to PREFETCH messages
ahead, which wait in this process until ``receive`` hands them out (no polling). A delivery tag belongs
to the channel that received it: after a reconnect the old channel's deliveries are back in the queue
(the broker requeued them), so settling one of them is skipped instead of closing the new channel.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections import deque
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from puente_api.brokers import MAX_DELIVERIES, Broker, BrokerError, Delivery, OutboundMessage
from puente_api.settings import BrokerURL

EXCHANGE = "puente.shipments"
ROUTING_KEY = "shipment.created"
QUEUE = "puente.labels"
DEAD_LETTER_EXCHANGE = "puente.dlx"
DEAD_LETTER_QUEUE = "puente.labels.dlq"
# Seconds to wait for the broker's socket; a relay stuck on a dead broker must fail and retry.
SOCKET_TIMEOUT = 5
# Unacknowledged messages the broker may push to one consumer ahead of its acks: two of the worker's
# batches, so the next batch is already here when one ends, and few enough that a worker that stops
# holds little another one could be doing.
PREFETCH = 20


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def _death_reason(headers: dict[str, Any]) -> str:
    if headers.get("x-first-death-reason"):
        return _text(headers["x-first-death-reason"])
    deaths = headers.get("x-death") or []
    return _text(deaths[0].get("reason")) if deaths else ""


def _tls(url: BrokerURL) -> pika.SSLOptions:
    try:
        context = ssl.create_default_context(cafile=url.ca_file or None)  # CERT_REQUIRED, host name checked
    except (OSError, ssl.SSLError) as exc:  # a missing or unreadable CA: a broker failure, never a 500
        raise BrokerError(f"RabbitMQ TLS: cannot load the CA file {url.ca_file!r}: {exc}") from exc
    return pika.SSLOptions(context, server_hostname=url.host)


class RabbitMQBroker(Broker):
    def __init__(self, url: BrokerURL) -> None:
        self.params = pika.ConnectionParameters(
            host=url.host,
            port=url.port,
            virtual_host=url.vhost,
            credentials=pika.PlainCredentials(url.username, url.password),
            socket_timeout=SOCKET_TIMEOUT,
            blocked_connection_timeout=30,
            connection_attempts=1,
            heartbeat=30,
            # amqps: TLS with the broker's certificate verified (chain and host name); never a fallback
            # to plain AMQP.
            ssl_options=_tls(url) if url.scheme == "amqps" else None,
        )
        self._conn: pika.BlockingConnection | None = None
        self._chan: BlockingChannel | None = None
        # Which channel a delivery tag belongs to (one more per reconnect).
        self._generation = 0
        self._consumer_tag: str | None = None
        # Deliveries the consumer brought in that `receive` has not handed out yet.
        self._pushed: deque[Delivery] = deque()

    def _channel(self) -> BlockingChannel:
        if self._chan is None or self._chan.is_closed or self._conn is None or self._conn.is_closed:
            self.close()
            try:
                self._conn = pika.BlockingConnection(self.params)
                self._chan = self._conn.channel()
                self._chan.confirm_delivery()
                self._chan.basic_qos(prefetch_count=PREFETCH)
            except (pika.exceptions.AMQPError, OSError) as exc:  # OSError: ssl.SSLError, a refused socket
                raise BrokerError(f"RabbitMQ unreachable: {exc!r}") from exc
            self._generation += 1
        return self._chan

    def declare(self) -> None:
        ch = self._channel()
        try:
            ch.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
            ch.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
            ch.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)
            ch.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
            ch.queue_declare(
                QUEUE,
                durable=True,
                arguments={
                    # replicated, fsync'd before confirming; counts deliveries for x-delivery-limit
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                    "x-delivery-limit": MAX_DELIVERIES,
                },
            )
            ch.queue_bind(QUEUE, EXCHANGE, routing_key=ROUTING_KEY)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ declare failed: {exc!r}") from exc

    def _publish(self, messages: list[OutboundMessage]) -> None:
        ch = self._channel()
        try:
            for msg in messages:
                # With confirm_delivery, basic_publish blocks until the broker's ack; mandatory=True
                # turns "no queue bound" into UnroutableError instead of a silent drop.
                ch.basic_publish(
                    EXCHANGE,
                    ROUTING_KEY,
                    msg.body,
                    pika.BasicProperties(
                        message_id=msg.message_id,
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        headers={"group_id": msg.group_id},
                    ),
                    mandatory=True,
                )
        except (pika.exceptions.AMQPError, pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
            self.close()
            raise BrokerError(f"RabbitMQ did not confirm the batch: {exc!r}") from exc

    def publish(self, messages: list[OutboundMessage]) -> None:
        self._publish(messages)

    def _delivery(self, method: Any, props: pika.BasicProperties, body: bytes) -> Delivery:
        headers = props.headers or {}
        return Delivery(
            props.message_id or "",
            body,
            int(headers.get("x-delivery-count", 0)) + 1,
            (self._generation, method.delivery_tag),
            group_id=_text(headers.get("group_id")),
            death_reason=_death_reason(headers),
        )

    def _on_message(self, _ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
        self._pushed.append(self._delivery(method, props, body))

    def receive(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        """What the consumer was pushed, up to ``max_messages``; waits up to ``wait_seconds`` for a first
        one (the connection's I/O wakes it as soon as one arrives)."""
        try:
            ch = self._channel()
            if self._consumer_tag is None:
                self._consumer_tag = ch.basic_consume(QUEUE, self._on_message, auto_ack=False)
            assert self._conn is not None
            deadline = time.monotonic() + wait_seconds
            self._conn.process_data_events(time_limit=0)
            while not self._pushed and (left := deadline - time.monotonic()) > 0:
                self._conn.process_data_events(time_limit=left)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ receive failed: {exc!r}") from exc
        return [self._pushed.popleft() for _ in range(min(max_messages, len(self._pushed)))]

    def _settle(self, delivery: Delivery, action: str, requeue: bool = False) -> None:
        generation, tag = delivery.handle
        if generation != self._generation or self._chan is None or self._chan.is_closed:
            return  # its channel is gone, and with it the delivery: the broker has requeued it
        try:
            if action == "ack":
                self._chan.basic_ack(tag)
            else:  # requeue=False dead-letters through x-dead-letter-exchange
                self._chan.basic_reject(tag, requeue=requeue)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ {action} failed: {exc!r}") from exc

    def ack(self, delivery: Delivery) -> None:
        self._settle(delivery, "ack")

    def reject(self, delivery: Delivery, requeue: bool) -> None:
        self._settle(delivery, "reject", requeue)

    def release(self, deliveries: list[Delivery]) -> None:
        """Stop consuming, then requeue ``deliveries`` and every message the prefetch brought in: they go
        back at once (to another worker if one consumes), not when this channel closes. The next
        ``receive`` consumes again."""
        held = [*deliveries, *self._pushed]
        self._pushed.clear()
        try:
            if self._consumer_tag is not None and self._chan is not None and self._chan.is_open:
                tag, self._consumer_tag = self._consumer_tag, None
                # pika nacks (requeue) what arrived for it but was not dispatched to _on_message yet
                self._chan.basic_cancel(tag)
            for d in held:
                self._settle(d, "reject", requeue=True)
        except pika.exceptions.AMQPError as exc:
            self.close()  # closing the channel requeues whatever was still held
            raise BrokerError(f"RabbitMQ release failed: {exc!r}") from exc
        finally:
            self._consumer_tag = None

    def _get(self, queue: str, max_messages: int, wait_seconds: float = 0.0) -> list[Delivery]:
        """basic.get (the dead-letter queue has no consumer): up to ``max_messages``, polling up to
        ``wait_seconds`` for a first one (dead-lettering is asynchronous inside the broker)."""
        ch = self._channel()
        out: list[Delivery] = []
        deadline = time.monotonic() + wait_seconds
        try:
            while len(out) < max_messages:
                method, props, body = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    if out or time.monotonic() >= deadline:
                        break
                    assert self._conn is not None
                    self._conn.sleep(0.05)
                    continue
                out.append(self._delivery(method, props, body))
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ receive failed: {exc!r}") from exc
        return out

    def dead_letters(self, max_messages: int = 10) -> list[Delivery]:
        out = self._get(DEAD_LETTER_QUEUE, max_messages, 0.5)
        for d in out:  # peek only: put them back
            self._settle(d, "reject", requeue=True)
        return out

    def dead_letter_count(self) -> int:
        try:
            return int(self._channel().queue_declare(DEAD_LETTER_QUEUE, passive=True).method.message_count)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ queue {DEAD_LETTER_QUEUE} unreachable: {exc!r}") from exc

    def receive_dead_letters(self, max_messages: int) -> list[Delivery]:
        # a worker's look may hold some for a moment (dead_letters): wait a little for a first one
        return self._get(DEAD_LETTER_QUEUE, max_messages, 0.5)

    def redrive(self, delivery: Delivery) -> None:
        # the same message id: the worker's inbox still absorbs a copy that was applied after all
        self._publish([OutboundMessage(delivery.message_id, delivery.group_id, delivery.body)])
        self.ack(delivery)

    def ping(self) -> None:
        try:
            self._channel().queue_declare(QUEUE, passive=True)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ queue {QUEUE} unreachable: {exc!r}") from exc

    def close(self) -> None:
        conn, self._conn, self._chan = self._conn, None, None
        self._consumer_tag = None
        self._pushed.clear()  # the broker requeues them when the connection goes
        if conn is not None and conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                conn.close()
