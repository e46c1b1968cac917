"""Shipments: the SQL of every read and write the routes perform.

The write functions run inside the idempotency core's transaction and return the response to store.
``CREATE_CTES`` is also what bench/ replays with pgbench to measure the database's ceiling.

Every statement a request runs is scoped to the calling client (the client id of its API key): another
client's shipment, its events and its label are found exactly as a shipment that does not exist.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from puente_api.idempotency import GatedWrite, StoredResponse, Tx
from puente_api.models import TERMINAL_STATUSES, EventCreate
from puente_api.problems import PROBLEM_JSON, Problem

TOPIC_CREATED = "shipment.created"

# The shipment and its outbox row (the label job), as CTEs gated by the idempotency core's `go`
# (idempotency.GatedWrite). The timestamps come from here, so the response is known before the database
# answers and the whole create -- key lock, key row, shipment, outbox -- is one statement.
CREATE_CTES = """
shipment AS (
    INSERT INTO shipments (id, client_id, service, reference, sender, recipient, parcels,
                           created_at, updated_at)
    SELECT %(id)s, %(client)s, %(service)s, %(reference)s, %(sender)s, %(recipient)s, %(parcels)s,
           %(now)s, %(now)s
      FROM go
    RETURNING id
), label_job AS (
    INSERT INTO outbox (topic, aggregate_id, payload)
    SELECT %(topic)s, shipment.id, jsonb_build_object('shipment_id', shipment.id) FROM shipment
)"""

_COLUMNS = (
    "id, status, label_status, label_failure_reason, tracking_number, service, reference, sender, recipient, "
    "parcels, created_at, updated_at"
)


def _ts(value: datetime) -> str:
    return value.isoformat()


def _shipment_doc(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "label_status": row["label_status"],
        "label_failure_reason": row["label_failure_reason"],
        "tracking_number": row["tracking_number"],
        "service": row["service"],
        "reference": row["reference"],
        "sender": row["sender"],
        "recipient": row["recipient"],
        "parcels": row["parcels"],
        "created_at": _ts(row["created_at"]),
        "updated_at": _ts(row["updated_at"]),
    }


def create(client_id: str, doc: dict[str, Any]) -> GatedWrite:
    """``doc``: the validated ShipmentCreate, dumped to JSON types."""
    shipment_id = uuid.uuid4()
    now = datetime.now(UTC)
    params = {
        "id": shipment_id,
        "client": client_id,
        "service": doc["service"],
        "reference": doc["reference"],
        "sender": Jsonb(doc["sender"]),
        "recipient": Jsonb(doc["recipient"]),
        "parcels": Jsonb(doc["parcels"]),
        "topic": TOPIC_CREATED,
        "now": now,
    }
    body = _shipment_doc(
        {
            **doc,
            "id": shipment_id,
            "status": "created",
            "label_status": "pending",
            "label_failure_reason": None,
            "tracking_number": None,
            "created_at": now,
            "updated_at": now,
        }
    )
    response = StoredResponse(201, orjson.dumps(body), {"Location": f"/v1/shipments/{shipment_id}"})
    return GatedWrite(CREATE_CTES, params, response)


def _stored_problem(problem: Problem, path: str) -> StoredResponse:
    return StoredResponse(problem.status, problem.body(path), media_type=PROBLEM_JSON)


async def add_event(
    tx: Tx, client_id: str, shipment_id: uuid.UUID, payload: EventCreate, path: str
) -> StoredResponse:
    rows = await tx.query(
        "SELECT status FROM shipments WHERE id = %s AND client_id = %s FOR UPDATE", (shipment_id, client_id)
    )
    row = rows[0] if rows else None
    if row is None:
        return _stored_problem(Problem(404, "not-found", f"No shipment {shipment_id}."), path)
    if row[0] in TERMINAL_STATUSES:
        return _stored_problem(
            Problem(
                409,
                "shipment-closed",
                f"Shipment {shipment_id} is {row[0]}; no tracking event can follow.",
                title="Shipment is closed",
            ),
            path,
        )
    event_id = uuid.uuid4()
    now = datetime.now(UTC)
    tx.defer(
        "INSERT INTO shipment_events (id, shipment_id, type, location, note, occurred_at, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (event_id, shipment_id, payload.type, payload.location, payload.note, payload.occurred_at, now),
    )
    tx.defer(
        "UPDATE shipments SET status = %s, updated_at = %s WHERE id = %s AND client_id = %s",
        (payload.type, now, shipment_id, client_id),
    )
    doc = _event_doc(
        (event_id, shipment_id, payload.type, payload.location, payload.note, payload.occurred_at, now)
    )
    return StoredResponse(
        201, orjson.dumps(doc), {"Location": f"/v1/shipments/{shipment_id}/events/{event_id}"}
    )


def _event_doc(row: tuple[Any, ...]) -> dict[str, Any]:
    eid, sid, etype, location, note, occurred_at, created_at = row
    return {
        "id": str(eid),
        "shipment_id": str(sid),
        "type": etype,
        "occurred_at": _ts(occurred_at),
        "location": location,
        "note": note,
        "created_at": _ts(created_at),
    }


async def get_event(
    conn: AsyncConnection[Any], client_id: str, shipment_id: uuid.UUID, event_id: uuid.UUID
) -> dict[str, Any] | None:
    """One tracking event of one of the client's shipments (what a 201's Location names), or None."""
    cur = await conn.execute(
        "SELECT e.id, e.shipment_id, e.type, e.location, e.note, e.occurred_at, e.created_at"
        "  FROM shipment_events e JOIN shipments s ON s.id = e.shipment_id"
        " WHERE e.id = %s AND e.shipment_id = %s AND s.client_id = %s",
        (event_id, shipment_id, client_id),
    )
    row = await cur.fetchone()
    return None if row is None else _event_doc(row)


async def get(conn: AsyncConnection[Any], client_id: str, shipment_id: uuid.UUID) -> dict[str, Any] | None:
    """One of the client's shipments with its events and label, or None (no such shipment of theirs)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM shipments WHERE id = %s AND client_id = %s", (shipment_id, client_id)
        )
        row = await cur.fetchone()
    if row is None:
        return None
    doc = _shipment_doc(row)
    cur2 = await conn.execute(
        "SELECT id, shipment_id, type, location, note, occurred_at, created_at FROM shipment_events "
        "WHERE shipment_id = %s ORDER BY occurred_at, created_at",
        (shipment_id,),
    )
    doc["events"] = [_event_doc(r) for r in await cur2.fetchall()]
    cur3 = await conn.execute("SELECT format, content FROM labels WHERE shipment_id = %s", (shipment_id,))
    label = await cur3.fetchone()
    doc["label"] = {"format": label[0], "content": label[1]} if label else None
    return doc


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s"):
            raise ValueError(raw)
        seq = int(raw[1:])
        if not 0 < seq < 2**63:
            raise ValueError(raw)
        return seq
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "cursor-invalid", "The cursor is not one this API returned.") from None


async def page(conn: AsyncConnection[Any], client_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """The client's shipments, newest first, keyset pagination on ``seq`` (index (client_id, seq)):
    stable under concurrent inserts, O(limit) per page."""
    after = decode_cursor(cursor) if cursor else 2**63 - 1
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT seq, {_COLUMNS} FROM shipments WHERE client_id = %s AND seq < %s"
            " ORDER BY seq DESC LIMIT %s",
            (client_id, after, limit + 1),
        )
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [_shipment_doc(r) for r in rows],
        "next_cursor": encode_cursor(rows[-1]["seq"]) if more else None,
    }
