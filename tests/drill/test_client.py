"""The drill client's behaviour as a client: resolves through the (real, loopback) PowerDNS, verifies
TLS for the NAME while connecting to the address, retries 503s with the SAME Idempotency-Key and
API key, does not retry a 4xx, and records every attempt.

The HTTPS endpoint here is a scripted responder, not the API: these tests are about the client's
conduct (the API's own semantics are tested in tests/api on a real PostgreSQL)."""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from puente.drill.attempts import WRITE, AttemptLog
from puente.drill.client import ClientConfig, DrillClient, RetryPolicy


class Script:
    def __init__(self) -> None:
        self.fail_next: list[int] = []
        self.seen: list[dict[str, str]] = []
        self.by_key: dict[str, str] = {}
        self.lock = threading.Lock()


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Puente-Site", "loopback")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            with script.lock:
                script.seen.append({k: v for k, v in self.headers.items()})
                code = script.fail_next.pop(0) if script.fail_next else None
            if code:
                self._send(code, {"status": code}, {"Retry-After": "0"} if code == 503 else None)
                return
            key = self.headers["Idempotency-Key"]
            if not (key.startswith('"') and key.endswith('"')):
                self._send(400, {"detail": "Idempotency-Key must be a structured-field string"})
                return
            with script.lock:
                created = key not in script.by_key
                sid = script.by_key.setdefault(key, str(uuid.uuid4()))
            self._send(201 if created else 200, {"id": sid})

        def do_GET(self) -> None:
            with script.lock:
                script.seen.append({k: v for k, v in self.headers.items()})
                known = self.path.rsplit("/", 1)[-1] in script.by_key.values()
            self._send(200 if known else 404, {"path": self.path})

    return Handler


@pytest.fixture
def server(tls, pdns) -> Iterator[tuple[Script, int]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls.cert, tls.key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    pdns.set_a(tls.name, "127.0.0.1", 2)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield script, httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _client(tls, pdns, port: int, name: str | None = None) -> tuple[DrillClient, AttemptLog]:
    log = AttemptLog()
    cfg = ClientConfig(
        name=name or tls.name,
        dns_server="127.0.0.1",
        dns_port=pdns.port,
        port=port,
        ca_file=tls.ca,
        retry=RetryPolicy(base=0.01, cap=0.02, request_deadline=10),
        api_key="pk_test_secret",
    )
    return DrillClient(cfg, log), log


def test_write_retried_with_the_same_key_until_acknowledged(tls, pdns, server):
    script, port = server
    script.fail_next = [503, 503]
    client, log = _client(tls, pdns, port)
    final = client.create()
    client.close()
    attempts = log.snapshot()
    assert [a.status for a in attempts] == [503, 503, 201]
    assert [a.error for a in attempts] == ["http_503", "http_503", None]
    assert final.ok and final.shipment_id and client.known == [final.shipment_id]
    keys = {h["Idempotency-Key"] for h in script.seen}
    clients = {h["Authorization"] for h in script.seen}
    assert len(keys) == 1 and clients == {"Bearer pk_test_secret"} and len(script.seen) == 3
    assert {a.request for a in attempts} == {final.request}
    assert [a.try_no for a in attempts] == [1, 2, 3]
    assert {a.site for a in attempts} == {"loopback"}
    assert all(a.op == WRITE and a.address == "127.0.0.1" for a in attempts)


def test_client_error_is_not_retried(tls, pdns, server):
    script, port = server
    script.fail_next = [422]
    client, log = _client(tls, pdns, port)
    final = client.create()
    client.close()
    assert (final.error, len(log)) == ("http_422", 1)


def test_read_back_tells_present_from_missing(tls, pdns, server):
    _, port = server
    client, _ = _client(tls, pdns, port)
    made = client.create()
    assert client.verify(made.shipment_id).status == 200
    missing = client.verify(str(uuid.uuid4()))
    client.close()
    assert (missing.status, missing.error) == (404, "http_404")


def test_certificate_for_another_name_is_refused(tls, pdns, server):
    _, port = server
    pdns.set_a("other.drill.test", "127.0.0.1", 2)
    client, _log = _client(tls, pdns, port, name="other.drill.test")
    client.config.retry = RetryPolicy(base=0.01, cap=0.02, request_deadline=0.0)
    final = client.create()
    client.close()
    assert final.error == "tls"


def test_unresolvable_name_is_recorded_as_dns(tls, pdns, server):
    _, port = server
    client, _ = _client(tls, pdns, port, name="nowhere.drill.test")
    client.config.retry = RetryPolicy(base=0.01, cap=0.02, request_deadline=0.0)
    assert client.create().error == "dns"
    client.close()
