"""The reaper: deletes idempotency keys older than PUENTE_IDEMPOTENCY_TTL_SECONDS (the published
window), outbox rows published longer ago than that, and inbox rows past INBOX_RETENTION.
Shipments are never deleted: a reaped key only means a new request with that key runs afresh."""

from __future__ import annotations

import logging

import psycopg

from puente_api import db
from puente_api.loop import forever
from puente_api.settings import Settings

# Rows per DELETE: short transactions, so the reaper never holds locks the API waits on for long.
BATCH_SIZE = 1000
# Seconds between passes once caught up; keys live 24 h by default, a minute of slack is nothing.
IDLE_SLEEP = 60.0
# Inbox rows must outlive any redelivery of their message (broker retention is days, not weeks).
INBOX_RETENTION = "14 days"

log = logging.getLogger("puente_api.reaper")

_REAP_KEYS = """
DELETE FROM idempotency_keys WHERE id IN (
    SELECT id FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %s)
     ORDER BY created_at LIMIT %s)
"""
_REAP_OUTBOX = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => %s) LIMIT %s)
"""
_REAP_INBOX = f"""
DELETE FROM inbox WHERE message_id IN (
    SELECT message_id FROM inbox WHERE received_at < now() - interval '{INBOX_RETENTION}' LIMIT %s)
"""


def run_once(conn: psycopg.Connection, ttl_seconds: int, batch_size: int = BATCH_SIZE) -> int:
    """One batch of each kind (autocommit: each DELETE is its own short transaction)."""
    keys = conn.execute(_REAP_KEYS, (ttl_seconds, batch_size)).rowcount
    outbox = conn.execute(_REAP_OUTBOX, (ttl_seconds, batch_size)).rowcount
    inbox = conn.execute(_REAP_INBOX, (batch_size,)).rowcount  # type: ignore[arg-type]
    if keys or outbox or inbox:
        log.info("reaped", extra={"keys": keys, "outbox": outbox, "inbox": inbox})
    return max(keys, outbox, inbox)


def run(settings: Settings, once: bool = False) -> int:
    conn: psycopg.Connection | None = None

    def one_batch() -> int:
        nonlocal conn
        if conn is None or conn.closed:
            conn = db.connect(settings)
        try:
            return run_once(conn, settings.idempotency_ttl_seconds)
        except psycopg.OperationalError:
            conn.close()
            raise

    try:
        if once:
            total = 0
            while (n := one_batch()) > 0:  # --once: drain everything due, then exit
                total += n
            return total
        forever("reaper", one_batch, IDLE_SLEEP, BATCH_SIZE)
        return 0
    finally:
        if conn is not None:
            conn.close()
