"""``puente-api labels redrive``: put dead-lettered label messages back on the queue, on an API node
(the settings of /etc/puente/api*.env), once the cause is fixed (the worker's log and each shipment's
``label_failure_reason`` say what it was).

For each dead letter (``--limit N``: the first N), its shipment's label goes from 'failed' back to
'pending' (COMMIT), then the message is published to the queue again (confirmed by the broker) and only
then removed from the dead-letter queue. A crash in between leaves the message in the dead-letter queue
(the worker marks the shipment failed again) or publishes it twice (the worker's inbox makes that
harmless). A message that names no shipment (unreadable) stays in the dead-letter queue and is counted
as skipped, unless ``--discard-unreadable``: then its id and first bytes are printed and it is deleted
(nothing could ever process it). Prints one line per message and a summary; exit code 0 when nothing
was skipped, 1 otherwise (so a script notices what is left).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import TextIO

import psycopg

from puente_api import db
from puente_api.brokers import Broker, Delivery
from puente_api.brokers import connect as connect_broker
from puente_api.settings import Settings
from puente_api.worker import PoisonMessage, parse

# Dead letters taken from the broker at a time.
BATCH_SIZE = 50


@dataclass
class Result:
    redriven: list[str] = field(default_factory=list)  # message ids
    skipped: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)


def _redrive_one(conn: psycopg.Connection, broker: Broker, d: Delivery, out: TextIO) -> None:
    _, shipment_id = parse(d)
    conn.execute(
        "UPDATE shipments SET label_status = 'pending', label_failure_reason = NULL, updated_at = now()"
        " WHERE id = %s AND label_status = 'failed'",
        (shipment_id,),
    )
    broker.redrive(d)
    print(f"redriven: message {d.message_id} shipment {shipment_id}", file=out)


def redrive(
    conn: psycopg.Connection,
    broker: Broker,
    out: TextIO,
    limit: int | None = None,
    discard_unreadable: bool = False,
) -> Result:
    result = Result()
    seen: set[str] = set()  # a skipped message comes back: meeting it again means the queue was gone through
    while limit is None or len(result.redriven) < limit:
        want = BATCH_SIZE if limit is None else min(BATCH_SIZE, limit - len(result.redriven))
        batch = broker.receive_dead_letters(want)
        if not batch or all(d.message_id in seen for d in batch):
            broker.release(batch)
            break
        skipped: list[Delivery] = []
        for i, d in enumerate(batch):
            try:
                if d.message_id in seen:
                    raise PoisonMessage("seen already")
                _redrive_one(conn, broker, d, out)
            except PoisonMessage as exc:
                if discard_unreadable and d.message_id not in seen:
                    broker.ack(d)
                    result.discarded.append(d.message_id)
                    print(f"discarded: message {d.message_id!r}: {exc}: {d.body[:200]!r}", file=out)
                    continue
                skipped.append(d)
                if d.message_id not in seen:
                    result.skipped.append(d.message_id)
                    print(f"skipped: message {d.message_id!r}: {exc}", file=out)
                seen.add(d.message_id)
                continue
            except Exception:
                broker.release([*skipped, *batch[i:]])
                raise
            result.redriven.append(d.message_id)
        broker.release(skipped)  # back to the dead-letter queue
    summary = f"redriven {len(result.redriven)}, skipped {len(result.skipped)}"
    print(summary + (f", discarded {len(result.discarded)}" if discard_unreadable else ""), file=out)
    return result


def _run(args: argparse.Namespace, cfg: Settings) -> int:
    broker = connect_broker(cfg.broker)
    try:
        with db.connect(cfg) as conn:
            result = redrive(conn, broker, sys.stdout, args.limit, args.discard_unreadable)
    finally:
        broker.close()
    return 1 if result.skipped else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    labels = sub.add_parser("labels", help="labels whose message was dead-lettered")
    commands = labels.add_subparsers(dest="labels_command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "redrive", help="put dead-lettered label messages back on the queue (their shipments: pending)"
    )
    p.add_argument("--limit", type=int, default=None, help="redrive at most this many (default: all)")
    p.add_argument(
        "--discard-unreadable",
        action="store_true",
        help="delete the dead letters that name no shipment (printed first) instead of leaving them",
    )
    p.set_defaults(func=_run)
