"""Fixtures of the API tests: real PostgreSQL, RabbitMQ and moto servers started once per session,
the schema migrated with ``puente-api migrate``, and the API served by a real uvicorn process."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import api_servers as servers
import httpx
import psycopg
import pytest
from api_helpers import Caller, make_caller, make_env, migrate
from puente_api import settings as settings_mod
from puente_api.brokers import Broker
from puente_api.brokers import connect as connect_broker


@pytest.fixture(scope="session")
def pg() -> Iterator[servers.Postgres]:
    with servers.postgres() as server:
        yield server


@pytest.fixture(scope="session")
def rabbit() -> Iterator[servers.RabbitMQ]:
    with servers.rabbitmq() as server:
        yield server


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    # moto accepts any credentials; set fake ones so boto3 never looks for real ones
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with servers.moto_sqs() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def api_env(pg: servers.Postgres, rabbit: servers.RabbitMQ) -> dict[str, str]:
    env = make_env(pg.create_database("puente"), rabbit.url())
    assert "applied schema version" in migrate(env)
    # a second run changes nothing, and says so (the `api` role's changed_when reads it)
    assert "schema is up to date" in migrate(env)
    broker = connect_broker(settings_mod.load(env).broker)
    broker.declare()  # what the relay and the worker do when they start
    broker.close()
    return env


@pytest.fixture(scope="session")
def settings(api_env: dict[str, str]) -> settings_mod.Settings:
    return settings_mod.load(api_env)


@pytest.fixture(scope="session")
def api(api_env: dict[str, str]) -> Iterator[servers.APIServer]:
    server = servers.APIServer(api_env).start()
    yield server
    server.stop()


@pytest.fixture
def caller(settings: settings_mod.Settings) -> Caller:
    """Client A: a client of its own per test (so tests never see each other's shipments or keys) and
    its API key, made by `puente-api keys create`'s code."""
    return make_caller(settings, f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def other(settings: settings_mod.Settings) -> Caller:
    """Client B, with a key of its own: what it must not see of client A's."""
    return make_caller(settings, f"other-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def client_id(caller: Caller) -> str:
    return caller.client_id


@pytest.fixture
def token(caller: Caller) -> str:
    return caller.token


@pytest.fixture
def client(api: servers.APIServer, caller: Caller) -> Iterator[httpx.Client]:
    """An HTTP client of the served API, authenticated as client A."""
    with httpx.Client(base_url=api.base_url, timeout=30, headers=caller.auth) as c:
        yield c


@pytest.fixture
def db(settings: settings_mod.Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        yield conn


@pytest.fixture
def rabbit_broker(settings: settings_mod.Settings) -> Iterator[Broker]:
    broker = connect_broker(settings.broker)
    broker.declare()
    yield broker
    broker.close()
