"""Request bodies and small helpers shared by the API tests."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from puente_api import keys_cli, outbox, worker
from puente_api.brokers import Broker
from puente_api.settings import Settings

API_EXE = str(Path(sys.executable).with_name("puente-api"))


def make_env(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    return {
        "PUENTE_SITE": "test",
        "PUENTE_SITE_ROLE": "primary",
        "PUENTE_DATABASE_URL": database_url,
        "PUENTE_DATABASE_PASSWORD": "",
        "PUENTE_BROKER_URL": broker_url,
        "PUENTE_BROKER_PASSWORD": "guest",
        "PUENTE_IDEMPOTENCY_TTL_SECONDS": "86400",
        "PUENTE_MAX_BODY_BYTES": "65536",
        "PUENTE_LOG_LEVEL": "INFO",
        **extra,
    }


def migrate(env: dict[str, str]) -> str:
    """`puente-api migrate`; returns what it logged (JSON lines on stderr)."""
    r = subprocess.run(
        [API_EXE, "migrate"], env={**os.environ, **env}, check=True, capture_output=True, text=True
    )
    return r.stderr


def new_key() -> str:
    """An Idempotency-Key header value: an RFC 8941 sf-string."""
    return f'"{uuid.uuid4()}"'


def address(name: str = "Ada Lovelace", city: str = "London") -> dict[str, Any]:
    return {
        "name": name,
        "street": "12 St James's Square",
        "city": city,
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    }


def shipment_body(weight: int = 1200, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sender": address("Puente Depot", "Madrid"),
        "recipient": address(),
        "parcels": [{"weight_grams": weight, "length_cm": 30, "width_cm": 20, "height_cm": 10}],
        "service": "express",
        "reference": "order-42",
    }
    body.update(overrides)
    return body


@dataclass(frozen=True)
class Caller:
    """A client of the API and the API key it authenticates with."""

    client_id: str
    key_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_caller(settings: Settings, client_id: str | None = None) -> Caller:
    """A new API key, made by the code of `puente-api keys create CLIENT` (its last line is the token)."""
    client_id = client_id or f"test-{uuid.uuid4().hex[:12]}"
    out = io.StringIO()
    keys_cli.create(settings, client_id, "tests", out)
    lines = out.getvalue().splitlines()
    assert lines[-2] == f"key_id: {lines[-1].split('_')[1]}", lines
    return Caller(client_id, lines[-2].removeprefix("key_id: "), lines[-1])


def headers(token: str, key: str | None = None, **extra: str) -> dict[str, str]:
    """What a write sends: the caller's API key, the JSON media type and (when given) an Idempotency-Key."""
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **extra}
    if key is not None:
        h["Idempotency-Key"] = key
    return h


def count(db: psycopg.Connection, sql: str, *params: Any) -> int:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def deliver_all(db: psycopg.Connection, broker: Broker, timeout: float = 20.0) -> list[str]:
    """Relay every outbox row and let the worker drain the queue; return the worker's outcomes."""
    deadline = time.monotonic() + timeout
    while outbox.run_once(db, broker) and time.monotonic() < deadline:
        pass
    outcomes: list[str] = []
    while time.monotonic() < deadline:
        deliveries = broker.receive(worker.BATCH_SIZE, 0.3)
        if not deliveries:
            break
        outcomes += [worker.handle(db, broker, d) for d in deliveries]
    return outcomes
