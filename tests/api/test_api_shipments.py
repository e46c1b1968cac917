"""Shipments over HTTP against the real server: create, read, events, pagination, headers."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import psycopg
from api_helpers import count, headers, new_key, shipment_body


def create(client: httpx.Client, token: str, **body_overrides: object) -> httpx.Response:
    return client.post(
        "/v1/shipments", json=shipment_body(**body_overrides), headers=headers(token, new_key())
    )


def test_create_returns_201_with_location_and_pending_label(client: httpx.Client, token: str) -> None:
    r = create(client, token)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert r.headers["location"] == f"/v1/shipments/{doc['id']}"
    assert doc["status"] == "created"
    assert doc["label_status"] == "pending"
    assert doc["tracking_number"] is None
    assert doc["parcels"][0]["weight_grams"] == 1200
    assert "idempotent-replayed" not in r.headers


def test_create_writes_shipment_and_outbox_row_together(
    client: httpx.Client, client_id: str, token: str, db: psycopg.Connection
) -> None:
    r = create(client, token)
    sid = r.json()["id"]
    assert count(db, "SELECT count(*) FROM shipments WHERE id = %s", sid) == 1
    assert count(db, "SELECT count(*) FROM outbox WHERE aggregate_id = %s", sid) == 1
    assert count(db, "SELECT count(*) FROM idempotency_keys WHERE client_id = %s", client_id) == 1


def test_get_shipment_returns_what_create_returned(client: httpx.Client, token: str) -> None:
    created = create(client, token).json()
    r = client.get(f"/v1/shipments/{created['id']}")
    assert r.status_code == 200
    doc = r.json()
    assert {k: doc[k] for k in created} == created
    assert doc["events"] == []
    assert doc["label"] is None


def test_unknown_shipment_is_404_problem(client: httpx.Client) -> None:
    r = client.get(f"/v1/shipments/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/not-found")


def test_events_append_and_move_the_status(client: httpx.Client, token: str) -> None:
    sid = create(client, token).json()["id"]
    for etype, at in (("picked_up", "2026-01-02T08:00:00Z"), ("in_transit", "2026-01-02T12:00:00+01:00")):
        r = client.post(
            f"/v1/shipments/{sid}/events",
            json={"type": etype, "occurred_at": at, "location": "Zaragoza hub"},
            headers=headers(token, new_key()),
        )
        assert r.status_code == 201, r.text
        assert r.json()["type"] == etype
    doc = client.get(f"/v1/shipments/{sid}").json()
    assert doc["status"] == "in_transit"
    assert [e["type"] for e in doc["events"]] == ["picked_up", "in_transit"]


def test_an_events_location_is_a_route_that_answers_with_the_event(client: httpx.Client, token: str) -> None:
    sid = create(client, token).json()["id"]
    other = create(client, token).json()["id"]
    r = client.post(
        f"/v1/shipments/{sid}/events",
        json={"type": "picked_up", "occurred_at": "2026-01-02T08:00:00Z", "location": "Zaragoza hub"},
        headers=headers(token, new_key()),
    )
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert location == f"/v1/shipments/{sid}/events/{r.json()['id']}"
    got = client.get(location)
    assert got.status_code == 200 and got.json() == r.json(), got.text
    # the event belongs to its shipment only; an unknown event is 404 as well
    assert client.get(f"/v1/shipments/{other}/events/{r.json()['id']}").status_code == 404
    missing = client.get(f"/v1/shipments/{sid}/events/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_event_on_unknown_shipment_is_404(client: httpx.Client, token: str) -> None:
    r = client.post(
        f"/v1/shipments/{uuid.uuid4()}/events",
        json={"type": "picked_up", "occurred_at": "2026-01-02T08:00:00Z"},
        headers=headers(token, new_key()),
    )
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_pagination_walks_every_shipment_once_newest_first(client: httpx.Client, token: str) -> None:
    """The list holds the caller's shipments only (every test is a client of its own): the five just
    made, newest first, and pages of two walk them once each."""
    made = [create(client, token).json()["id"] for _ in range(5)]
    whole = client.get("/v1/shipments", params={"limit": 100}).json()
    assert [s["id"] for s in whole["items"]] == made[::-1] and whole["next_cursor"] is None
    walked: list[dict[str, object]] = []
    cursor, pages = None, 0
    while pages < 10:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/shipments", params=params).json()
        pages += 1
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [s["id"] for s in walked] == made[::-1]
    created = [s["created_at"] for s in whole["items"]]
    assert created == sorted(created, reverse=True)


def test_invalid_cursor_and_limit_are_problems(client: httpx.Client) -> None:
    r = client.get("/v1/shipments", params={"cursor": "not-a-cursor!"})
    assert r.status_code == 400
    assert r.json()["type"].endswith("/cursor-invalid")
    r = client.get("/v1/shipments", params={"limit": 0})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_request_id_is_echoed_or_generated_and_logged(client: httpx.Client, api: object) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "drill-1234"})
    assert r.headers["x-request-id"] == "drill-1234"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    int(generated, 16)
    # Complete lines only, and a moment for the line to land: the server may still be writing it (or
    # another one) while the test reads the file.
    deadline = time.monotonic() + 5
    while True:
        text = api.logs()  # type: ignore[attr-defined]
        lines = [
            orjson.loads(line)
            for line in text.splitlines(keepends=True)
            if line.startswith("{") and line.endswith("\n")
        ]
        access = [
            e for e in lines if e.get("logger") == "puente_api.access" and e.get("request_id") == "drill-1234"
        ]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert access and access[0]["status"] == 200 and access[0]["path"] == "/healthz"


def test_healthz_and_readyz_details_name_site_and_role(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "alive", "site": "test", "role": "primary"}
    # the public readiness says ready, nothing more; the detailed one is for the internal networks
    for params in ({}, {"scope": "read"}):
        r = client.get("/readyz", params=params)
        assert r.status_code == 200 and r.json() == {"status": "ready"}, r.text
    r = client.get("/readyz/details")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "site": "test",
        "role": "primary",
        "database": "ok",
        "broker": "ok",
    }


def test_metrics_count_requests(client: httpx.Client) -> None:
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'puente_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "puente_idempotency_outcomes_total" in text


def test_openapi_documents_the_idempotency_header(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/v1/shipments"]["post"]["parameters"]
    key = next(p for p in params if p["name"] == "Idempotency-Key")
    assert key["required"] is True
    responses = spec["paths"]["/v1/shipments"]["post"]["responses"]
    assert "application/problem+json" in responses["409"]["content"]
    assert "Idempotent-Replayed" in responses["201"]["headers"]


def _post_500s_and_499s(client: httpx.Client) -> tuple[float, float]:
    sums = {"500": 0.0, "499": 0.0}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('puente_http_requests_total{method="POST"'):
            for status in sums:
                if f'status="{status}"' in line:
                    sums[status] += float(line.rsplit(" ", 1)[1])
    return sums["500"], sums["499"]


def test_a_client_that_goes_away_is_a_499_not_a_500(api: Any, client: httpx.Client, token: str) -> None:
    """Half a body, then the socket closes: the API counts and logs 'client closed request', not an error
    of its own (a 500 would page someone for a client's network)."""
    import socket
    from urllib.parse import urlsplit

    fives, closed = _post_500s_and_499s(client)
    url = urlsplit(api.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/shipments HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nIdempotency-Key: {new_key()}\r\n".encode()
            + b'Content-Length: 500\r\n\r\n{"sender":'
        )
    deadline = time.monotonic() + 10
    while _post_500s_and_499s(client)[1] == closed:
        assert time.monotonic() < deadline, (
            "the dropped request was never counted:\n"
            + "\n".join(x for x in client.get("/metrics").text.splitlines() if "requests_total" in x)
            + api.logs()[-3000:]
        )
        time.sleep(0.1)
    assert _post_500s_and_499s(client) == (fives, closed + 1)
    assert "unhandled error" not in api.logs()
