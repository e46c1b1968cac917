"""RabbitMQ adapter (pika): publisher confirms, a durable quorum queue, a dead-letter exchange."""

from __future__ import annotations

import contextlib
import ssl

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

    def _channel(self) -> BlockingChannel:
        if self._chan is None or self._chan.is_closed or self._conn is None or self._conn.is_closed:
            self.close()
            try:
                self._conn = pika.BlockingConnection(self.params)
                self._chan = self._conn.channel()
                self._chan.confirm_delivery()
                self._chan.basic_qos(prefetch_count=50)
            except (pika.exceptions.AMQPError, OSError) as exc:  # OSError: ssl.SSLError, a refused socket
                raise BrokerError(f"RabbitMQ unreachable: {exc!r}") from exc
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

    def publish(self, messages: list[OutboundMessage]) -> None:
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

    def _get(self, queue: str, max_messages: int, wait_seconds: float, ack: bool) -> list[Delivery]:
        ch = self._channel()
        out: list[Delivery] = []
        try:
            waited = 0.0
            while len(out) < max_messages:
                method, props, body = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    if out or waited >= wait_seconds:
                        break
                    assert self._conn is not None
                    self._conn.sleep(0.05)
                    waited += 0.05
                    continue
                headers = props.headers or {}
                count = int(headers.get("x-delivery-count", 0)) + 1
                out.append(Delivery(props.message_id or "", body, count, method.delivery_tag))
            if not ack:
                for d in out:  # peek only: put them back
                    ch.basic_nack(d.handle, requeue=True)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ receive failed: {exc!r}") from exc
        return out

    def receive(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        return self._get(QUEUE, max_messages, wait_seconds, ack=True)

    def ack(self, delivery: Delivery) -> None:
        self._channel().basic_ack(delivery.handle)

    def reject(self, delivery: Delivery, requeue: bool) -> None:
        # requeue=False dead-letters through x-dead-letter-exchange
        self._channel().basic_reject(delivery.handle, requeue=requeue)

    def dead_letters(self, max_messages: int = 10) -> list[Delivery]:
        return self._get(DEAD_LETTER_QUEUE, max_messages, 0.5, ack=False)

    def ping(self) -> None:
        try:
            self._channel().queue_declare(QUEUE, passive=True)
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise BrokerError(f"RabbitMQ queue {QUEUE} unreachable: {exc!r}") from exc

    def close(self) -> None:
        conn, self._conn, self._chan = self._conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                conn.close()
