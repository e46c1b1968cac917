"""Idempotency-Key semantics (IETF httpapi draft + Stripe's documented behaviour), end to end."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
import pytest
from api_helpers import Caller, count, headers, new_key, shipment_body
from puente_api import reaper
from puente_api.settings import Settings


def post(client: httpx.Client, token: str, key: str | None, body: object | None = None) -> httpx.Response:
    return client.post("/v1/shipments", json=body or shipment_body(), headers=headers(token, key))


def test_missing_key_is_400_and_creates_nothing(
    client: httpx.Client, client_id: str, token: str, db: psycopg.Connection
) -> None:
    r = post(client, token, None)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/idempotency-key-missing")
    assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", client_id) == 0


@pytest.mark.parametrize(
    "key",
    [
        "short-1",  # bare, fewer than 8 characters
        "has space-inside",  # bare: no spaces (only the quoted form may hold them)
        "a,b-cdefgh",  # bare: a comma would read as a list
        "abc-defgh;a=1",  # bare: a semicolon would read as a parameter
        '"short"',  # fewer than 8 characters
        '"' + "x" * 256 + '"',  # more than 255
        '"has"quote"',  # unescaped DQUOTE inside
        '"8e03978e-40d5";a=1',  # parameters: not a bare sf-string
        '"ключ-ключ-ключ"'.encode(),  # non-ASCII (sent as raw UTF-8 bytes)
        '""',
    ],
)
def test_malformed_key_is_400(client: httpx.Client, token: str, key: str | bytes) -> None:
    r = client.post("/v1/shipments", json=shipment_body(), headers={**headers(token), "Idempotency-Key": key})
    assert r.status_code == 400, r.text
    assert r.json()["type"].endswith("/idempotency-key-malformed")


def test_a_bare_key_is_the_same_key_as_its_quoted_form(client: httpx.Client, token: str) -> None:
    """Stripe-style clients send the key bare (Idempotency-Key: 8e03978e-...): accepted, and one key
    with "8e03978e-...": a retry in the other form replays, a different body under it is 422."""
    bare = str(uuid.uuid4())
    first = client.post(
        "/v1/shipments", json=shipment_body(), headers={**headers(token), "Idempotency-Key": bare}
    )
    assert first.status_code == 201, first.text
    again = post(client, token, f'"{bare}"')
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.text
    assert again.json()["id"] == first.json()["id"]
    other = client.post(
        "/v1/shipments",
        json=shipment_body(weight=999),
        headers={**headers(token), "Idempotency-Key": bare},
    )
    assert other.status_code == 422, other.text


def test_two_key_headers_are_400(api: object, token: str) -> None:
    base = api.base_url  # type: ignore[attr-defined]
    h = [("Idempotency-Key", new_key()), ("Idempotency-Key", new_key()), ("Authorization", f"Bearer {token}")]
    r = httpx.post(f"{base}/v1/shipments", json=shipment_body(), headers=h)
    assert r.status_code == 400


def test_escaped_sf_string_is_accepted(client: httpx.Client, token: str) -> None:
    r = post(client, token, r'"with \"escapes\" and \\ slash"')
    assert r.status_code == 201, r.text


def test_retry_replays_the_stored_response_byte_for_byte(
    client: httpx.Client, client_id: str, token: str, db: psycopg.Connection
) -> None:
    key = new_key()
    first = post(client, token, key)
    again = post(client, token, key)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", client_id) == 1


def test_same_json_in_another_order_is_the_same_request(client: httpx.Client, token: str) -> None:
    key = new_key()
    body = shipment_body()
    first = client.post("/v1/shipments", content=orjson_dumps(body), headers=headers(token, key))
    reordered = dict(reversed(list(body.items())))
    again = client.post(
        "/v1/shipments", content=orjson_dumps(reordered, indent=True), headers=headers(token, key)
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def orjson_dumps(doc: object, indent: bool = False) -> bytes:
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 if indent else 0)


def test_same_key_different_payload_is_422(
    client: httpx.Client, client_id: str, token: str, db: psycopg.Connection
) -> None:
    key = new_key()
    assert post(client, token, key).status_code == 201
    r = post(client, token, key, shipment_body(weight=999))
    assert r.status_code == 422
    assert r.json()["type"].endswith("/idempotency-key-reused")
    assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", client_id) == 1


def test_same_key_on_another_endpoint_is_422(client: httpx.Client, token: str) -> None:
    key = new_key()
    sid = post(client, token, key).json()["id"]
    r = client.post(
        f"/v1/shipments/{sid}/events",
        json={"type": "picked_up", "occurred_at": "2026-01-02T08:00:00Z"},
        headers=headers(token, key),
    )
    assert r.status_code == 422


def test_keys_are_scoped_per_client(
    client: httpx.Client, caller: Caller, other: Caller, db: psycopg.Connection
) -> None:
    """The same Idempotency-Key from clients A and B (each with its own API key) is two keys."""
    key = new_key()
    a = post(client, caller.token, key)
    b = post(client, other.token, key)
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    for who in (caller, other):
        assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", who.client_id) == 1
    # and each replays its own: A's retry is A's shipment, B's retry B's
    assert post(client, caller.token, key).json()["id"] == a.json()["id"]
    assert post(client, other.token, key).json()["id"] == b.json()["id"]


def test_stored_4xx_is_replayed(client: httpx.Client, token: str) -> None:
    sid = post(client, token, new_key()).json()["id"]
    delivered = {"type": "delivered", "occurred_at": "2026-01-03T10:00:00Z"}
    assert (
        client.post(
            f"/v1/shipments/{sid}/events", json=delivered, headers=headers(token, new_key())
        ).status_code
        == 201
    )
    key = new_key()
    late = {"type": "in_transit", "occurred_at": "2026-01-04T10:00:00Z"}
    first = client.post(f"/v1/shipments/{sid}/events", json=late, headers=headers(token, key))
    assert first.status_code == 409
    assert first.json()["type"].endswith("/shipment-closed")
    again = client.post(f"/v1/shipments/{sid}/events", json=late, headers=headers(token, key))
    assert again.status_code == 409
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/problem+json"


def test_validation_failures_are_not_stored(client: httpx.Client, token: str) -> None:
    """Stripe: results are saved only once the endpoint started executing; fix the body, keep the key."""
    key = new_key()
    bad = post(client, token, key, shipment_body(weight=-5))
    assert bad.status_code == 422
    good = post(client, token, key)
    assert good.status_code == 201
    assert "idempotent-replayed" not in good.headers


def test_fifty_concurrent_posts_with_one_key_make_one_shipment(
    api: object, client_id: str, token: str, db: psycopg.Connection
) -> None:
    key = new_key()
    body = shipment_body()

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=60, limits=limits) as ac:  # type: ignore[attr-defined]
            return await asyncio.gather(
                *(ac.post("/v1/shipments", json=body, headers=headers(token, key)) for _ in range(50))
            )

    responses = asyncio.run(burst())
    fresh = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    replays = [
        r for r in responses if r.status_code == 201 and r.headers.get("idempotent-replayed") == "true"
    ]
    conflicts = [r for r in responses if r.status_code == 409]
    assert len(fresh) == 1
    assert len(fresh) + len(replays) + len(conflicts) == 50, [r.status_code for r in responses]
    assert all(r.content == fresh[0].content for r in replays)
    assert all(r.headers["content-type"] == "application/problem+json" for r in conflicts)
    assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", client_id) == 1
    assert count(db, "SELECT count(*) FROM outbox WHERE aggregate_id = %s", fresh[0].json()["id"]) == 1


def test_reaper_removes_expired_keys_and_keeps_shipments(
    client: httpx.Client, client_id: str, token: str, db: psycopg.Connection, settings: Settings
) -> None:
    old_key, new = new_key(), new_key()
    old_id = post(client, token, old_key).json()["id"]
    post(client, token, new)
    db.execute(
        "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => %s + 60) "
        "WHERE client_id = %s AND idempotency_key = %s",
        (settings.idempotency_ttl_seconds, client_id, old_key.strip('"')),
    )
    assert reaper.run_once(db, settings.idempotency_ttl_seconds) >= 1
    keys = [
        r[0]
        for r in db.execute("SELECT idempotency_key FROM idempotency_keys WHERE client_id = %s", (client_id,))
    ]
    assert keys == [new.strip('"')]
    assert count(db, "SELECT count(*) FROM shipments WHERE id = %s", old_id) == 1
    # after expiry the key is new again: a fresh request, a second shipment
    again = post(client, token, old_key)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["id"] != old_id


def test_expired_key_not_yet_reaped_counts_as_absent(
    client: httpx.Client, client_id: str, token: str, db: psycopg.Connection, settings: Settings
) -> None:
    key = new_key()
    first = post(client, token, key).json()["id"]
    db.execute(
        "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => %s + 1) WHERE client_id = %s",
        (settings.idempotency_ttl_seconds, client_id),
    )
    again = post(client, token, key)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first
    assert count(db, "SELECT count(*) FROM idempotency_keys WHERE client_id = %s", client_id) == 1


def test_the_fingerprint_is_the_request_as_sent_not_the_model() -> None:
    """Stable across releases: the canonical JSON the client sent (keys sorted, compact), never the
    validated model with its defaults filled in (a release adding a defaulted field would otherwise
    turn a genuine retry on the other site into a 422)."""
    import asyncio
    import hashlib
    import json

    from puente_api import idempotency
    from puente_api.models import ShipmentCreate
    from puente_api.writes import parse_body

    doc = shipment_body()
    del doc["reference"]  # optional: the model fills in None
    raw = json.dumps(doc, indent=2).encode()

    async def body() -> bytes:
        return raw

    model, sent = asyncio.run(parse_body(ShipmentCreate, body))
    assert sent == json.loads(raw)
    assert "reference" not in sent and "reference" in model.model_dump(mode="json")  # a default, not sent
    canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(b"POST /v1/shipments\n" + canonical.encode()).hexdigest()
    assert idempotency.fingerprint("POST", "/v1/shipments", sent) == expected
