"""kill -9 of the API process in the middle of a POST, restart, retry: exactly one shipment and one
label. The test-only pause hooks (tests/api/hooked_api.py) hold the request at a chosen
point so the kill lands exactly there."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest
from api_helpers import count, deliver_all, headers, new_key, shipment_body
from api_servers import APIServer
from puente_api import db as db_mod
from puente_api.brokers import Broker


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def advisory_locks(db: psycopg.Connection) -> int:
    return count(
        db,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
    )


def post_in_background(
    base_url: str, body: object, hdrs: dict[str, str]
) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def send() -> None:
        try:
            result.append(httpx.post(f"{base_url}/v1/shipments", json=body, headers=hdrs, timeout=60))
        except httpx.HTTPError as exc:  # the server died under the request
            result.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    return thread, result


@pytest.mark.parametrize("point", ["LOCK", "COMMIT"])
def test_kill9_mid_post_then_retry_gives_one_shipment_and_one_label(
    api_env: dict[str, str],
    client_id: str,
    token: str,
    db: psycopg.Connection,
    rabbit_broker: Broker,
    point: str,
) -> None:
    server = APIServer(api_env).start(pause_after=(point.lower(), 30))
    key, body = new_key(), shipment_body()
    try:
        thread, result = post_in_background(server.base_url, body, headers(token, key))
        if point == "LOCK":
            # the transaction is open and holds the key's lock: kill now
            wait_for(lambda: advisory_locks(db) == 1)
        else:
            # the transaction committed; the response is not written yet: kill now
            wait_for(lambda: count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", client_id) == 1)
        server.kill9()
        thread.join(30)
        assert isinstance(result[0], httpx.HTTPError), result  # the client saw no answer

        # PostgreSQL noticed the dead client: the lock is gone, nothing half-done is left
        wait_for(lambda: advisory_locks(db) == 0)
        expected = 0 if point == "LOCK" else 1
        assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", client_id) == expected
        assert count(db, "SELECT count(*) FROM idempotency_keys WHERE client_id = %s", client_id) == expected

        server.start()  # restart without the pause
        retry = httpx.post(f"{server.base_url}/v1/shipments", json=body, headers=headers(token, key))
        assert retry.status_code == 201
        assert ("idempotent-replayed" in retry.headers) == (point == "COMMIT")
        again = httpx.post(f"{server.base_url}/v1/shipments", json=body, headers=headers(token, key))
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.content == retry.content
    finally:
        server.stop()

    deliver_all(db, rabbit_broker)
    sid = retry.json()["id"]
    assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", client_id) == 1
    assert count(db, "SELECT count(*) FROM outbox WHERE aggregate_id = %s", sid) == 1
    assert count(db, "SELECT count(*) FROM labels WHERE shipment_id = %s", sid) == 1
    row = db.execute("SELECT label_status FROM shipments WHERE id = %s", (sid,)).fetchone()
    assert row == ("ready",)


def test_the_pause_hooks_cannot_be_switched_on_from_outside(api_env: dict[str, str], token: str) -> None:
    """The environment variables that used to enable them do nothing to the shipped `puente-api serve`:
    a write answers at once (the launcher above is the only way in)."""
    old = {f"PUENTE_TEST_PAUSE_AFTER_{p}_SECONDS": "30" for p in ("LOCK", "COMMIT")}
    server = APIServer(api_env).start(old)
    try:
        started = time.monotonic()
        answer = httpx.post(
            f"{server.base_url}/v1/shipments",
            json=shipment_body(),
            headers=headers(token, new_key()),
            timeout=25,
        )
        assert answer.status_code == 201
        assert time.monotonic() - started < 10, "the write was held: a pause hook was switched on"
    finally:
        server.stop()


def test_every_session_lets_the_server_find_a_vanished_client_within_seconds(settings) -> None:
    """The server probes the API's sessions (keepalive 1 s idle, 1 s apart, 2 probes; 4 s user timeout):
    where its TCP peer is the API itself (the cloud's NLB), a node that vanished without a FIN loses its
    sessions, their transaction and any key they held within seconds. The settings are the server's own
    view of a TCP session opened as the API opens them (on a Unix socket they would read 0)."""
    with db_mod.connect(settings) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in db_mod.TCP_KEEPALIVE}
    assert shown == {
        "tcp_keepalives_idle": "1",
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": "2",
        "tcp_user_timeout": "4000",
    }
