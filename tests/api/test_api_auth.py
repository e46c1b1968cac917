"""Who the client is, against the real server: every request but the open ones needs an API key, the
identity is the key's client (never the caller's X-Client-Id), every shipment read, list, event and
idempotency key is scoped to it, and each client has its own rate limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from api_helpers import Caller, count, headers, make_caller, new_key, shipment_body
from api_servers import APIServer
from puente_api import auth, keys_cli
from puente_api.settings import Settings

EVENT = {"type": "picked_up", "occurred_at": "2026-01-02T08:00:00Z"}
UNKNOWN_TOKEN = "pk_Unknown1_" + "x" * 43


def assert_401(r: httpx.Response, slug: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith('Bearer realm="puente"')
    assert r.headers["x-request-id"]
    doc = r.json()
    assert doc["status"] == 401 and doc["type"].endswith(f"/{slug}") and doc["detail"]


@pytest.fixture
def anonymous(api: APIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=30) as c:
        yield c


def create(c: httpx.Client, who: Caller, key: str | None = None) -> httpx.Response:
    return c.post("/v1/shipments", json=shipment_body(), headers=headers(who.token, key or new_key()))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/shipments"),
        ("GET", f"/v1/shipments/{uuid.uuid4()}"),
        ("GET", f"/v1/shipments/{uuid.uuid4()}/events/{uuid.uuid4()}"),
        ("POST", "/v1/shipments"),
        ("POST", f"/v1/shipments/{uuid.uuid4()}/events"),
        ("GET", "/v1/nothing-here"),
        ("DELETE", "/v1/shipments"),
    ],
)
def test_no_key_is_401_with_a_challenge(anonymous: httpx.Client, method: str, path: str) -> None:
    r = anonymous.request(method, path, json=shipment_body(), headers={"Idempotency-Key": new_key()})
    assert_401(r, "authentication-required")
    assert r.headers["www-authenticate"] == 'Bearer realm="puente"'  # no error code without a token


def test_an_unauthenticated_write_changes_nothing(anonymous: httpx.Client, db: psycopg.Connection) -> None:
    client_id = f"nobody-{uuid.uuid4().hex[:8]}"
    r = anonymous.post(
        "/v1/shipments",
        json=shipment_body(),
        headers={"X-Client-Id": client_id, "Idempotency-Key": new_key()},  # what used to be enough
    )
    assert_401(r, "authentication-required")
    assert count(db, "SELECT count(*) FROM idempotency_keys WHERE client_id = %s", client_id) == 0


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + UNKNOWN_TOKEN,  # well-formed, no such key
        "Bearer pk_short_secret",
        "Bearer " + UNKNOWN_TOKEN + "x",
        "Bearer",
        "Token " + UNKNOWN_TOKEN,
    ],
)
def test_a_bad_key_is_401(anonymous: httpx.Client, authorization: str) -> None:
    r = anonymous.get("/v1/shipments", headers={"Authorization": authorization})
    scheme_ok = authorization.split(" ")[0] == "Bearer"
    assert_401(r, "invalid-api-key" if scheme_ok else "authentication-required")
    if scheme_ok:
        assert r.headers["www-authenticate"] == 'Bearer realm="puente", error="invalid_token"'


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/readyz?scope=read", "/readyz/details", "/metrics", "/openapi.json"]
)
def test_the_open_endpoints_need_no_key(anonymous: httpx.Client, path: str) -> None:
    r = anonymous.get(path)
    assert r.status_code == 200, r.text
    assert "ratelimit" not in r.headers


def test_the_callers_x_client_id_is_ignored(
    client: httpx.Client, caller: Caller, other: Caller, db: psycopg.Connection
) -> None:
    """A writes naming B in X-Client-Id: the shipment and the idempotency key are A's."""
    r = client.post(
        "/v1/shipments",
        json=shipment_body(),
        headers={**headers(caller.token, new_key()), "X-Client-Id": other.client_id},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert db.execute("SELECT client_id FROM shipments WHERE id = %s", (sid,)).fetchone() == (
        caller.client_id,
    )
    assert count(db, "SELECT count(*) FROM idempotency_keys WHERE client_id = %s", other.client_id) == 0
    # nor does X-Client-Id open another client's data
    spoofed = client.get(f"/v1/shipments/{sid}", headers={**other.auth, "X-Client-Id": caller.client_id})
    assert spoofed.status_code == 404


def test_a_revoked_key_is_refused_once_the_cache_ttl_passed(
    anonymous: httpx.Client, settings: Settings
) -> None:
    who = make_caller(settings)
    assert anonymous.get("/v1/shipments", headers=who.auth).status_code == 200  # cached now
    keys_cli.revoke(settings, who.key_id, out=_Discard())
    # Not a timing assertion: whatever the load, once the TTL has passed since the revocation
    # committed, no cache entry made before it is left, and any made after it is negative.
    time.sleep(auth.CACHE_TTL_SECONDS + 0.2)
    assert_401(anonymous.get("/v1/shipments", headers=who.auth), "invalid-api-key")


class _Discard:
    def write(self, text: str) -> int:
        return len(text)


def _not_found_body(r: httpx.Response, sid: str) -> dict[str, object]:
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc.pop("request_id") == r.headers["x-request-id"]  # each request's own
    return {k: str(v).replace(sid, "<id>") for k, v in doc.items()}


def test_another_clients_shipment_is_not_found(client: httpx.Client, caller: Caller, other: Caller) -> None:
    """B asks for A's shipment: the very 404 of a shipment that does not exist (nothing says it does)."""
    sid = create(client, caller).json()["id"]
    assert client.get(f"/v1/shipments/{sid}").status_code == 200  # A's own
    theirs = client.get(f"/v1/shipments/{sid}", headers=other.auth)
    missing_id = str(uuid.uuid4())
    missing = client.get(f"/v1/shipments/{missing_id}", headers=other.auth)
    assert _not_found_body(theirs, sid) == _not_found_body(missing, missing_id)


def test_the_list_holds_the_callers_shipments_only(
    client: httpx.Client, caller: Caller, other: Caller
) -> None:
    mine = [create(client, caller).json()["id"] for _ in range(2)]
    theirs = create(client, other).json()["id"]
    a = client.get("/v1/shipments", params={"limit": 100}).json()
    b = client.get("/v1/shipments", params={"limit": 100}, headers=other.auth).json()
    assert [s["id"] for s in a["items"]] == mine[::-1]
    assert [s["id"] for s in b["items"]] == [theirs]
    # a cursor of A's pages walks B's own shipments only
    page = client.get("/v1/shipments", params={"limit": 1}).json()
    assert page["next_cursor"]
    beyond = client.get("/v1/shipments", params={"cursor": page["next_cursor"]}, headers=other.auth).json()
    assert all(s["id"] != mine[0] for s in beyond["items"])
    assert {s["id"] for s in beyond["items"]} <= {theirs}


def test_another_client_cannot_post_or_read_events(
    client: httpx.Client, caller: Caller, other: Caller, db: psycopg.Connection
) -> None:
    sid = create(client, caller).json()["id"]
    event = client.post(f"/v1/shipments/{sid}/events", json=EVENT, headers=headers(caller.token, new_key()))
    assert event.status_code == 201, event.text
    # B reads A's event at its Location: 404
    assert client.get(event.headers["location"], headers=other.auth).status_code == 404
    # B posts 'delivered' on A's shipment: the 404 of an unknown shipment, and nothing changes
    delivered = {"type": "delivered", "occurred_at": "2026-01-03T08:00:00Z"}
    r = client.post(f"/v1/shipments/{sid}/events", json=delivered, headers=headers(other.token, new_key()))
    missing_id = str(uuid.uuid4())
    unknown = client.post(
        f"/v1/shipments/{missing_id}/events", json=delivered, headers=headers(other.token, new_key())
    )
    assert _not_found_body(r, sid) == _not_found_body(unknown, missing_id)
    assert count(db, "SELECT count(*) FROM shipment_events WHERE shipment_id = %s", sid) == 1
    assert client.get(f"/v1/shipments/{sid}").json()["status"] == "picked_up"


def test_another_client_cannot_replay_a_clients_keys(
    client: httpx.Client, caller: Caller, other: Caller, db: psycopg.Connection
) -> None:
    """B sends A's Idempotency-Keys: they are B's own keys, run afresh for B, never A's stored answers."""
    key = new_key()
    a = create(client, caller, key)
    b = create(client, other, key)
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers and b.json()["id"] != a.json()["id"]
    sid = a.json()["id"]
    event_key = new_key()
    first = client.post(f"/v1/shipments/{sid}/events", json=EVENT, headers=headers(caller.token, event_key))
    assert first.status_code == 201
    replay = client.post(f"/v1/shipments/{sid}/events", json=EVENT, headers=headers(other.token, event_key))
    assert replay.status_code == 404 and "idempotent-replayed" not in replay.headers
    assert count(db, "SELECT count(*) FROM shipments WHERE client_id = %s", other.client_id) == 1


def test_authenticated_answers_carry_the_ratelimit_fields(client: httpx.Client) -> None:
    r = client.get("/v1/shipments")
    assert r.status_code == 200
    assert r.headers["ratelimit-policy"] == '"default";q=200;w=2'  # the defaults: 100/s, bursts of 200
    assert r.headers["ratelimit"].startswith('"default";r=')


@pytest.fixture(scope="module")
def strict_api(api_env: dict[str, str]) -> Iterator[APIServer]:
    """A server with a tight limit: 1 request/s, bursts of 2."""
    server = APIServer(api_env).start({"PUENTE_RATE_LIMIT_PER_SECOND": "1", "PUENTE_RATE_LIMIT_BURST": "2"})
    yield server
    server.stop()


def test_over_the_limit_is_429_with_retry_after_and_nothing_is_stored(
    strict_api: APIServer, caller: Caller, other: Caller, db: psycopg.Connection
) -> None:
    with httpx.Client(base_url=strict_api.base_url, timeout=30, headers=caller.auth) as c:
        answers = [c.get("/v1/shipments") for _ in range(20)]  # 20 in under 18 s: some must be refused
        refused = [r for r in answers if r.status_code == 429]
        assert refused and {r.status_code for r in answers} == {200, 429}
        r = refused[0]
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-policy"] == '"default";q=2;w=2'
        assert r.headers["ratelimit"] == f'"default";r=0;t={r.headers["retry-after"]}'
        assert r.json()["type"].endswith("/rate-limited") and r.json()["status"] == 429
        # the limit is per client: B is not held back by A
        assert c.get("/v1/shipments", headers=other.auth).status_code == 200
        # a refused write stores nothing: the same key, after Retry-After, runs afresh
        writes = [
            (key, c.post("/v1/shipments", json=shipment_body(), headers=headers(caller.token, key)))
            for key in (new_key() for _ in range(20))
        ]
        key, refused_write = next((k, w) for k, w in writes if w.status_code == 429)
        stored = "SELECT count(*) FROM idempotency_keys WHERE client_id = %s AND idempotency_key = %s"
        assert count(db, stored, caller.client_id, key.strip('"')) == 0
        time.sleep(int(refused_write.headers["retry-after"]))  # the bucket holds a request again
        again = c.post("/v1/shipments", json=shipment_body(), headers=headers(caller.token, key))
        assert again.status_code == 201 and "idempotent-replayed" not in again.headers, again.text
        assert count(db, stored, caller.client_id, key.strip('"')) == 1
