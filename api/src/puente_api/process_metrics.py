"""Prometheus metrics of the background processes (relay, worker): counters that live in the process,
served by a small HTTP listener of its own (``--metrics-listen ADDRESS:PORT``), since these processes
serve no HTTP otherwise. The API's own /metrics (metrics.py) adds the gauges read from the database.

Each process only imports what it counts; the listener serves prometheus_client's default registry.
"""

from __future__ import annotations

import ipaddress
import logging

from prometheus_client import Counter, Gauge, start_http_server

log = logging.getLogger("puente_api.metrics")

BATCH_ERRORS = Counter(
    "puente_process_batch_errors_total",
    "Batches that failed (database or broker unreachable, a message that raised); the process backs off",
    ["process"],
)
RELAY_PUBLISHED = Counter(
    "puente_relay_published_total", "Outbox rows the broker confirmed and the relay marked published"
)
WORKER_MESSAGES = Counter(
    "puente_worker_messages_total",
    "Label messages by outcome: applied (label made), duplicate (already applied: only acknowledged), "
    "dead_lettered (unprocessable: sent to the dead-letter queue), failed (an error: requeued)",
    ["outcome"],
)
WORKER_RELEASED = Counter(
    "puente_worker_released_total",
    "Messages of a batch that failed part-way, requeued at once (nack), not held until the channel closes",
)
DEAD_LETTERS = Gauge(
    "puente_worker_dead_letters",
    "Messages in the dead-letter queue at the worker's last look (every DEAD_LETTER_SCAN_SECONDS)",
)
LABELS_MARKED_FAILED = Counter(
    "puente_worker_labels_failed_total", "Shipments whose label the worker marked failed (label_status)"
)

for _outcome in ("applied", "duplicate", "dead_lettered", "failed"):
    WORKER_MESSAGES.labels(_outcome)  # every series exists from the start (rate() needs a first sample)


def parse_listen(raw: str) -> tuple[str, int]:
    """``ADDRESS:PORT`` (IPv6 in brackets) -> (address, port); ValueError names what is wrong."""
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics-listen must be ADDRESS:PORT, got {raw!r}")
    ipaddress.ip_address(host)  # an address, never a name: the listener binds exactly there
    return host, int(port)


def serve(listen: str) -> None:
    """Start the metrics listener in a daemon thread (GET /metrics); empty ``listen``: none."""
    if not listen:
        return
    host, port = parse_listen(listen)
    start_http_server(port, addr=host)
    log.info("metrics listening", extra={"address": host, "port": port})
