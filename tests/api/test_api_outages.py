"""When the database is unreachable or read-only, or the broker is down, the API answers 503 +
Retry-After problem+json with the request id (never a bare 500); /readyz/details says why, naming the
site and its role, and the public /readyz only that the site is not ready."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from api_helpers import headers, make_caller, make_env, migrate, new_key, shipment_body
from api_servers import APIServer, Postgres, free_port
from puente_api import settings as settings_mod
from tcp_proxy import cuttable_proxy

# A well-formed key no database knows: with the database down, the API cannot tell, and answers 503.
SOME_TOKEN = "pk_AAAAAAAA_" + "B" * 43


def assert_unavailable(r: httpx.Response) -> dict[str, object]:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) > 0
    doc = dict(r.json())
    assert doc["request_id"] == r.headers["x-request-id"] and len(str(doc["request_id"])) >= 8, doc
    return doc


# What the public /readyz may say when the site is not ready: that it is not, and which request it was.
PUBLIC_NOT_READY = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_public_not_ready(r: httpx.Response, secrets: tuple[str, ...]) -> None:
    doc = assert_unavailable(r)
    assert set(doc) == PUBLIC_NOT_READY and str(doc["type"]).endswith("/not-ready"), doc
    for word in secrets:  # nothing of the detailed form's reasons leaks into the text
        assert word.lower() not in r.text.lower(), (word, r.text)


@pytest.fixture
def server_factory() -> Iterator[list[APIServer]]:
    started: list[APIServer] = []
    yield started
    for s in started:
        s.stop()


def serve(factory: list[APIServer], env: dict[str, str]) -> APIServer:
    server = APIServer(env).start()
    factory.append(server)
    return server


def test_database_unreachable_gives_503_and_readyz_says_why(
    server_factory: list[APIServer], api_env: dict[str, str]
) -> None:
    env = {
        **api_env,
        "PUENTE_DATABASE_URL": f"postgresql://puente@127.0.0.1:{free_port()}/puente",
        "PUENTE_SITE": "cloud",
        "PUENTE_SITE_ROLE": "secondary",
    }
    server = serve(server_factory, env)
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        assert c.get("/healthz").status_code == 200  # alive, just not ready
        doc = assert_unavailable(
            c.post("/v1/shipments", json=shipment_body(), headers=headers(SOME_TOKEN, new_key()))
        )
        assert str(doc["type"]).endswith("/database-unavailable")
        # the key cannot be looked up: the outage's 503, not a 401 (nor a 500)
        assert_unavailable(c.get("/v1/shipments", headers=headers(SOME_TOKEN)))
        ready = assert_unavailable(c.get("/readyz/details", headers={"X-Request-ID": "probe-0001"}))
        assert ready["request_id"] == "probe-0001"
        assert ready["site"] == "cloud" and ready["role"] == "secondary"
        assert any("database unreachable" in str(r) for r in ready["reasons"])  # type: ignore[attr-defined]
        assert_unavailable(c.get("/readyz/details", params={"scope": "read"}))  # nothing to read either
        for params in ({}, {"scope": "read"}):
            assert_public_not_ready(
                c.get("/readyz", params=params), ("database", "cloud", "secondary", "Error", "reasons")
            )


def test_read_only_database_gives_503_reads_still_work(
    server_factory: list[APIServer], pg: Postgres, api_env: dict[str, str]
) -> None:
    url = pg.create_database("puente_ro")
    env = make_env(url, api_env["PUENTE_BROKER_URL"])
    migrate(env)
    caller = make_caller(settings_mod.load(env))
    import psycopg

    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        # what a standby or a leaderless cluster looks like to the API: every transaction read-only
        conn.execute("ALTER DATABASE puente_ro SET default_transaction_read_only = on")
    server = serve(server_factory, env)
    with httpx.Client(base_url=server.base_url, timeout=30, headers=caller.auth) as c:
        doc = assert_unavailable(
            c.post("/v1/shipments", json=shipment_body(), headers=headers(caller.token, new_key()))
        )
        assert str(doc["type"]).endswith("/database-read-only")
        assert c.get("/v1/shipments").status_code == 200
        ready = assert_unavailable(c.get("/readyz/details"))
        assert any("read-only" in str(r) for r in ready["reasons"])  # type: ignore[attr-defined]
        assert_public_not_ready(c.get("/readyz"), ("read-only", "database"))
        # ...but the site can serve reads: load balancers and the failover DNS keep it in rotation
        read = c.get("/readyz/details", params={"scope": "read"})
        assert read.status_code == 200 and read.json()["scope"] == "read", read.text
        assert c.get("/readyz", params={"scope": "read"}).json() == {"status": "ready"}


def test_broker_down_fails_readyz_but_writes_go_on(
    server_factory: list[APIServer], api_env: dict[str, str], token: str
) -> None:
    """The outbox decouples writes from the broker: the shipment is taken, its label waits."""
    env = {**api_env, "PUENTE_BROKER_URL": f"amqp://guest@127.0.0.1:{free_port()}/%2F"}
    server = serve(server_factory, env)
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        ready = assert_unavailable(c.get("/readyz/details"))
        assert ready["reasons"] and "broker unreachable" in str(ready["reasons"])
        assert_public_not_ready(c.get("/readyz"), ("broker", "amqp", "refused"))
        r = c.post("/v1/shipments", json=shipment_body(), headers=headers(token, new_key()))
        assert r.status_code == 201
        assert r.json()["label_status"] == "pending"


def test_reads_and_read_readiness_follow_the_read_url_while_the_write_route_hangs(
    server_factory: list[APIServer], pg: Postgres, api_env: dict[str, str]
) -> None:
    """A site cut off from the leader: its write route (PUENTE_DATABASE_URL) hangs like a blackholed
    leader behind HAProxy, its read route (PUENTE_DATABASE_READ_URL, its own synchronous standby) still
    answers. Reads and /readyz?scope=read are served from the read route, so nothing here waits for a
    check of the far side to fail; writes and the plain /readyz say 503."""
    url = pg.create_database("puente_cut")
    env = make_env(url, api_env["PUENTE_BROKER_URL"])
    migrate(env)
    caller = make_caller(settings_mod.load(env))
    healthy = serve(server_factory, env)
    with httpx.Client(base_url=healthy.base_url, timeout=30) as c:
        created = c.post("/v1/shipments", json=shipment_body(), headers=headers(caller.token, new_key()))
        assert created.status_code == 201, created.text
    shipment = created.json()["id"]

    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        cut = {**env, "PUENTE_DATABASE_URL": f"postgresql://puente@127.0.0.1:{port}/puente"}
        cut["PUENTE_DATABASE_READ_URL"] = url
        server = serve(server_factory, cut)
        # the API key is looked up over the read route too: reads go on, authenticated
        with httpx.Client(base_url=server.base_url, timeout=30, headers=caller.auth) as c:
            read = c.get("/readyz/details", params={"scope": "read"})
            assert read.status_code == 200 and read.json()["database"] == "ok", read.text
            got = c.get(f"/v1/shipments/{shipment}")
            assert got.status_code == 200 and got.json()["id"] == shipment, got.text
            assert any(s["id"] == shipment for s in c.get("/v1/shipments").json()["items"])
            doc = assert_unavailable(
                c.post("/v1/shipments", json=shipment_body(), headers=headers(caller.token, new_key()))
            )
            assert str(doc["type"]).endswith("/database-unavailable")
            ready = assert_unavailable(c.get("/readyz/details"))
            assert any("database unreachable" in str(r) for r in ready["reasons"])  # type: ignore[attr-defined]
            # the write route's failures do not spill over to reads
            assert c.get("/readyz", params={"scope": "read"}).status_code == 200


def test_a_read_route_that_cut_every_session_costs_no_failed_read(
    server_factory: list[APIServer], pg: Postgres, api_env: dict[str, str]
) -> None:
    """The load balancer cuts every session of the read route at once (its member was marked down, or a
    preferred member came back and the backups' sessions were shut). The pool's idle sessions are all
    dead then: the first read that meets one runs again on a fresh one and the pool checks the others,
    so no read and no readiness check fails (before: one failure per dead session, one per second on
    the load balancer's check — 5 s of a site out of rotation)."""
    url = pg.create_database("puente_moved")
    env = make_env(url, api_env["PUENTE_BROKER_URL"])
    migrate(env)
    caller = make_caller(settings_mod.load(env))
    with cuttable_proxy(pg.port) as proxy:
        env["PUENTE_DATABASE_READ_URL"] = f"postgresql://puente@127.0.0.1:{proxy.port}/puente_moved"
        server = serve(server_factory, env)
        with httpx.Client(base_url=server.base_url, timeout=30, headers=caller.auth) as c:
            created = c.post("/v1/shipments", json=shipment_body(), headers=headers(caller.token, new_key()))
            assert created.status_code == 201, created.text
            path = f"/v1/shipments/{created.json()['id']}"
            with ThreadPoolExecutor(8) as pool:  # the read pool grows to several sessions
                assert set(pool.map(lambda _: c.get(path).status_code, range(64))) == {200}
            assert proxy.sessions() >= 2
            assert proxy.cut() >= 2
            answers = [c.get(path).status_code for _ in range(10)]
            answers += [c.get("/readyz", params={"scope": "read"}).status_code for _ in range(5)]
            assert answers == [200] * 15, answers
            assert "discarding" in server.logs()  # the pool did meet the dead sessions
