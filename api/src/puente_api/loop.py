"""The shared shape of the background processes (relay, worker, reaper): ``run_once`` does one batch
and returns how much it did; ``run`` repeats it until SIGTERM/SIGINT, sleeping only when idle and
backing off on errors (database or broker down) instead of crashing."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable

import psycopg

from puente_api import db, process_metrics
from puente_api.brokers import Broker, BrokerError
from puente_api.brokers import connect as connect_broker
from puente_api.settings import Settings

# Longest back-off after repeated errors, in seconds.
MAX_BACKOFF = 10.0


class NotWritable(RuntimeError):
    """The database answers but cannot take writes (a standby): the loop backs off and retries."""


def _on_standby(conn: psycopg.Connection) -> bool:
    return conn.info.parameter_status("in_hot_standby") == "on"


class Stop:
    def __init__(self) -> None:
        self.event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.event.set())

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


def forever(name: str, once: Callable[[], int], idle_sleep: float, full_batch: int) -> None:
    log = logging.getLogger(f"puente_api.{name}")
    stop = Stop()
    backoff = 0.0
    log.info("%s started", name)
    while not stop.event.is_set():
        try:
            done = once()
            backoff = 0.0
        except Exception as exc:  # keep running through outages; each failure is logged
            process_metrics.BATCH_ERRORS.labels(name).inc()
            backoff = min(MAX_BACKOFF, backoff * 2 or 0.5)
            log.warning("%s batch failed, retrying in %.1fs: %s: %s", name, backoff, type(exc).__name__, exc)
            stop.wait(backoff)
            continue
        if done < full_batch:  # caught up: wait for more work
            stop.wait(idle_sleep)
    log.info("%s stopped", name)


def run_with_broker(
    name: str,
    settings: Settings,
    run_once: Callable[[psycopg.Connection, Broker], int],
    idle_sleep: float,
    full_batch: int,
    once: bool = False,
) -> int:
    """The relay's and the worker's process: one broker and one database connection, both (re)made
    inside the loop, so a broker or database that is down at start is retried, not fatal."""
    broker = connect_broker(settings.broker)
    conn: psycopg.Connection | None = None
    declared = False

    def one_batch() -> int:
        try:
            return batch()
        except Exception:
            # hand back whatever this process holds (the worker's prefetched messages) while it backs
            # off; a broker that is down has taken them back already
            with contextlib.suppress(BrokerError):
                broker.release([])
            raise

    def batch() -> int:
        nonlocal conn, declared
        if not declared:
            broker.declare()
            declared = True
        if conn is not None and not conn.closed and _on_standby(conn):
            conn.close()
        if conn is None or conn.closed:
            conn = db.connect(settings)
            if _on_standby(conn):
                # No leader yet (HAProxy sends sessions to the standby meanwhile): take no message now.
                # Every delivery that fails counts toward the dead-letter limit, and an outage is not
                # the message's fault.
                conn.close()
                raise NotWritable("the database is a hot standby (no leader yet): not taking messages")
        try:
            return run_once(conn, broker)
        except psycopg.Error:
            conn.close()  # remade and checked before the next batch
            raise

    try:
        if once:
            return one_batch()
        forever(name, one_batch, idle_sleep, full_batch)
        return 0
    finally:
        broker.close()
        if conn is not None:
            conn.close()
