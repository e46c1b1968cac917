"""Issue 12, item 1's metrics of the queue path: the backlog gauges the API's /metrics reads from the
database at scrape time, and the counters the relay and the worker serve on listeners of their own
(``--metrics-listen``), read with Prometheus' own text parser."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from api_helpers import API_EXE, count, deliver_all, headers, new_key, shipment_body
from api_servers import free_port, wait_port
from prometheus_client.parser import text_string_to_metric_families
from puente_api.brokers import Broker

BACKLOG = (
    "puente_outbox_waiting",
    "puente_outbox_oldest_waiting_age_seconds",
    "puente_labels_pending",
    "puente_labels_pending_oldest_age_seconds",
    "puente_labels_failed",
    "puente_idempotency_keys_oldest_age_seconds",
)


def samples(text: str) -> dict[str, float]:
    """name{label="v",...} -> value, for every sample of the exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def scrape(base_url: str) -> dict[str, float]:
    r = httpx.get(f"{base_url}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def test_metrics_carry_the_backlog_read_from_the_database(
    api: object, client: httpx.Client, token: str, db: psycopg.Connection, rabbit_broker: Broker
) -> None:
    base = str(api.base_url)  # type: ignore[attr-defined]
    deliver_all(db, rabbit_broker)
    before = scrape(base)
    assert before["puente_backlog_up"] == 1
    assert before["puente_outbox_waiting"] == 0 and before["puente_outbox_oldest_waiting_age_seconds"] == 0
    r = client.post("/v1/shipments", json=shipment_body(), headers=headers(token, new_key()))
    assert r.status_code == 201
    time.sleep(1.1)
    during = scrape(base)
    assert during["puente_outbox_waiting"] == 1
    assert during["puente_outbox_oldest_waiting_age_seconds"] >= 1
    assert during["puente_labels_pending"] == before["puente_labels_pending"] + 1
    assert during["puente_labels_pending_oldest_age_seconds"] >= 1
    assert during["puente_idempotency_keys_oldest_age_seconds"] >= 1
    assert during["puente_labels_failed"] == count(
        db, "SELECT count(*) FROM shipments WHERE label_status = 'failed'"
    )
    deliver_all(db, rabbit_broker)
    after = scrape(base)
    assert after["puente_outbox_waiting"] == 0
    assert after["puente_labels_pending"] == before["puente_labels_pending"]


def test_metrics_say_when_the_backlog_cannot_be_read(api_env: dict[str, str]) -> None:
    """The database gone: /metrics still answers at once, the gauges left out and puente_backlog_up 0."""
    from api_servers import APIServer

    server = APIServer({**api_env, "PUENTE_DATABASE_URL": f"postgresql://puente@127.0.0.1:{free_port()}/x"})
    server.start()
    try:
        started = time.monotonic()
        got = scrape(server.base_url)
        assert time.monotonic() - started < 4
    finally:
        server.stop()
    assert got["puente_backlog_up"] == 0
    assert not set(BACKLOG) & set(got)


@pytest.fixture
def worker_process(api_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [API_EXE, "worker", "--metrics-listen", f"127.0.0.1:{port}"],
        env={**os.environ, **api_env},
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, 20, proc)  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0


def test_relay_and_worker_count_what_they_do(
    worker_process: str, api_env: dict[str, str], client: httpx.Client, token: str, db: psycopg.Connection
) -> None:
    before = scrape(worker_process)
    applied = 'puente_worker_messages_total{outcome="applied"}'
    assert {applied, 'puente_worker_messages_total{outcome="failed"}', "puente_worker_dead_letters"} <= set(
        before
    )
    sid = client.post("/v1/shipments", json=shipment_body(), headers=headers(token, new_key())).json()["id"]
    relay = subprocess.run(
        [API_EXE, "relay", "--once"],
        env={**os.environ, **api_env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "published" in relay.stderr
    deadline = time.monotonic() + 10
    while count(db, "SELECT count(*) FROM shipments WHERE id = %s AND label_status = 'ready'", sid) == 0:
        assert time.monotonic() < deadline, "the running worker never made the label"
        time.sleep(0.1)
    after = scrape(worker_process)
    assert after[applied] >= before[applied] + 1
    assert "process_resident_memory_bytes" in after


def test_metrics_listen_must_be_an_address_and_port() -> None:
    r = subprocess.run([API_EXE, "worker", "--metrics-listen", "localhost:9"], capture_output=True, text=True)
    assert r.returncode == 2 and "--metrics-listen" in r.stderr
