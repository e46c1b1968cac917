"""Role `gateway`: nginx at the edge of the on-prem site, checked from outside like a client would.

What the role promises: TLS 1.2+ only with a certificate of the lab CA, plain HTTP redirected (probes
excepted), X-Request-ID generated or kept and passed to the API, Idempotency-Key passed through, a body
limit (413) and a rate limit (429) answered as problem+json, a JSON access log, the key file root-only,
and nothing listening on the edge but what is meant to. The public /readyz says ready or not, nothing
more; /readyz/details and /metrics answer the load balancers (and monitoring networks) only. A 502/503/504
of nginx or HAProxy is problem+json with Retry-After and the request id.
"""

from __future__ import annotations

import json
import socket
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from lab_requests import CA, EDGES, SHIPMENT

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

EDGE = "onprem-edge1"
EDGE_IP = EDGES["onprem"]
URL = f"https://{EDGE_IP}"
ACCESS_LOG = "/var/log/nginx/puente-access.json"


@pytest.fixture(scope="module")
def client(api_key: str):
    with httpx.Client(
        base_url=URL,
        verify=ssl.create_default_context(cafile=CA),
        timeout=10,
        headers={"Authorization": f"Bearer {api_key}"},
    ) as c:
        yield c


def _handshake(version: ssl.TLSVersion) -> str:
    """Handshake offering exactly `version`: the negotiated version, or the server's refusal."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CA)
    ctx.minimum_version = version
    ctx.maximum_version = version
    # Let the client offer old versions at all (OpenSSL's default security level forbids them).
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection((EDGE_IP, 443), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=EDGE_IP) as tls:
                return tls.version() or ""
        except ssl.SSLError as exc:
            return f"refused: {exc.reason}"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_accepted_with_the_lab_ca(version: ssl.TLSVersion) -> None:
    assert _handshake(version) == version.name.replace("_", ".")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_below_12_refused_by_the_server(version: ssl.TLSVersion) -> None:
    outcome = _handshake(version)
    # The server's alert, not a client that refused to offer the version.
    assert outcome.startswith("refused"), outcome
    assert "PROTOCOL_VERSION" in outcome.upper() or "UNSUPPORTED_PROTOCOL" in outcome.upper(), outcome


def test_plain_http_redirects_to_https_keeping_method_and_path() -> None:
    r = httpx.post(f"http://{EDGE_IP}/v1/shipments?x=1", content=b"{}", follow_redirects=False, timeout=10)
    assert r.status_code == 308
    assert r.headers["location"] == f"https://{EDGE_IP}/v1/shipments?x=1"


def test_plain_http_answers_health_probes() -> None:
    r = httpx.get(f"http://{EDGE_IP}/healthz", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "alive"


def test_request_id_generated_when_absent(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    ids = r.headers.get_list("x-request-id")
    assert len(ids) == 1 and len(ids[0]) == 32, ids


def test_request_id_kept_echoed_and_passed_to_the_api(client: httpx.Client, node) -> None:
    rid = f"test-{uuid.uuid4()}"
    r = client.get("/healthz", headers={"X-Request-ID": rid})
    assert r.headers.get_list("x-request-id") == [rid]
    line = _access_log_line(node, rid)
    assert line["status"] == 200 and line["upstream_status"] == "200", line


def test_malformed_request_id_replaced(client: httpx.Client) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


def test_idempotency_key_reaches_the_api(client: httpx.Client) -> None:
    key = f'"gw-{uuid.uuid4()}"'
    first = client.post("/v1/shipments", json=SHIPMENT, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    again = client.post("/v1/shipments", json=SHIPMENT, headers={"Idempotency-Key": key})
    # Without the key the API would have created a second shipment.
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"


def test_two_idempotency_keys_reach_the_api_as_two_and_get_400(client: httpx.Client) -> None:
    h = [("Idempotency-Key", f'"gw-{uuid.uuid4()}"'), ("Idempotency-Key", f'"gw-{uuid.uuid4()}"')]
    r = client.post("/v1/shipments", json=SHIPMENT, headers=h)
    assert r.status_code == 400, r.text
    assert r.json()["type"].endswith("/idempotency-key-malformed")


def test_body_over_the_limit_is_413_problem_json(client: httpx.Client) -> None:
    r = client.post(
        "/v1/shipments", content=b"x" * (128 * 1024), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413
    assert r.headers.get("x-request-id")


RATE_BURST = r"""
import http.client, json, ssl, sys, threading
counts = {}
lock = threading.Lock()
sample = {}
def run(n):
    ctx = ssl.create_default_context(cafile=sys.argv[1])
    ctx.check_hostname = False
    c = http.client.HTTPSConnection("127.0.0.1", 443, context=ctx, timeout=10)
    for _ in range(n):
        c.request("GET", "/healthz")
        r = c.getresponse()
        body = r.read()
        with lock:
            counts[r.status] = counts.get(r.status, 0) + 1
            if r.status == 429 and not sample:
                sample.update(body=body.decode(), ctype=r.getheader("Content-Type"),
                              retry=r.getheader("Retry-After"))
threads = [threading.Thread(target=run, args=(150,)) for _ in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"counts": counts, "sample": sample}))
"""


def test_rate_limit_answers_429_problem_json(node) -> None:
    # Sent from the edge node itself: its own client address, so other clients of the lab are not limited.
    edge = node(EDGE)
    edge.run("install -m 0644 /dev/stdin /tmp/puente-rate-burst.py <<'EOF'\n" + RATE_BURST + "\nEOF")
    ca = edge.check_output("mktemp")
    edge.run(f"cat > {ca} <<'EOF'\n{CA.read_text()}\nEOF")
    out = json.loads(edge.check_output(f"python3 /tmp/puente-rate-burst.py {ca}"))
    counts = {int(k): v for k, v in out["counts"].items()}
    assert counts.get(429, 0) > 0, counts
    assert set(counts) <= {200, 429}, counts
    assert out["sample"]["ctype"] == "application/problem+json"
    assert out["sample"]["retry"] == "1"
    assert json.loads(out["sample"]["body"])["status"] == 429


def _access_log_line(node, request_id: str) -> dict:
    out = node(EDGE).check_output(f'grep -F \'"request_id":"{request_id}"\' {ACCESS_LOG} | tail -n 1')
    return json.loads(out)


def test_access_log_is_json_lines(node) -> None:
    lines = node(EDGE).check_output(f"tail -n 5 {ACCESS_LOG}").splitlines()
    assert lines
    for line in lines:
        doc = json.loads(line)
        assert {"time", "request_id", "method", "status", "upstream_status"} <= set(doc)


def test_private_key_is_root_only(node) -> None:
    key = node(EDGE).file("/etc/nginx/tls/gateway.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)


def test_nginx_running_and_listening_only_on_80_and_443(node) -> None:
    edge = node(EDGE)
    assert edge.service("nginx").is_running and edge.service("nginx").is_enabled
    ports = _nginx_ports(edge)
    # 8090: stub_status for the nginx exporter (role exporters), on loopback only
    assert ports == {80, 443, 8090}, ports
    stub = {line.split()[3] for line in edge.check_output("ss -Hltn sport = :8090").splitlines()}
    assert stub == {"127.0.0.1:8090"}, stub


def _nginx_ports(edge) -> set[int]:
    out = edge.check_output("ss -Hltnp")
    ports: set[int] = set()
    for line in out.splitlines():
        if '"nginx"' in line:
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return ports


# --- readiness and metrics: public or internal ------------------------------------------------------------
def test_public_readyz_says_ready_and_nothing_more(client: httpx.Client) -> None:
    for path in ("/readyz", "/readyz?scope=read"):
        r = client.get(path)
        assert (r.status_code, r.json()) == (200, {"status": "ready"}), (path, r.text)


@pytest.mark.parametrize(
    "path", ["/readyz/details", "/readyz/details?scope=read", "/metrics", "/%6detrics", "/readyz%2Fdetails"]
)
def test_internal_paths_are_refused_to_the_public(client: httpx.Client, path: str) -> None:
    rid = f"test-{uuid.uuid4()}"
    r = client.get(path, headers={"X-Request-ID": rid})
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["request_id"] == rid and "database" not in r.text


def test_internal_paths_answer_the_load_balancer(node) -> None:
    """From the edge node itself (a load balancer's address): the gateway passes them to the API."""
    edge = node(EDGE)
    details = json.loads(edge.check_output("curl -sk --fail-with-body https://127.0.0.1/readyz/details"))
    assert details["database"] == "ok" and details["site"] == "onprem", details
    assert "puente_http_requests_total" in edge.check_output(
        "curl -sk --fail-with-body https://127.0.0.1/metrics"
    )


# --- 502/503/504: problem+json, Retry-After, the request id ----------------------------------------------
def _assert_unavailable(r: httpx.Response, status: int, rid: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers.get_list("x-request-id") == [rid]
    doc = r.json()
    assert (doc["status"], doc["request_id"]) == (status, rid), doc


@contextmanager
def _api_servers_in_maintenance(node) -> Iterator[None]:
    """Every API server of the on-prem HAProxy in maintenance (its own 503), put back however it ends."""
    edge = node(EDGE)
    servers = ("onprem-api1", "onprem-api2")

    def runtime(command: str) -> None:
        edge.check_output(f"echo '{command}' | socat stdio unix-connect:/run/haproxy/admin.sock")

    try:
        for s in servers:
            runtime(f"set server api/{s} state maint")
        yield
    finally:
        for s in servers:
            runtime(f"set server api/{s} state ready")


@contextmanager
def _load_balancer_refused(node) -> Iterator[None]:
    """nginx's connections to HAProxy's API frontend (loopback :8080) reset (its own 502); nothing else of
    the node is touched (HAProxy still checks the API nodes and fronts PostgreSQL)."""
    edge = node(EDGE)
    table = "inet puente_test_502"
    edge.check_output(
        f"nft add table {table} && nft add chain {table} out '{{ type filter hook output priority 0; }}'"
        f" && nft add rule {table} out ip daddr 127.0.0.1 tcp dport 8080 reject with tcp reset"
    )
    try:
        yield
    finally:
        edge.check_output(f"nft delete table {table}")


def test_haproxy_503_and_nginx_502_are_problems_with_retry_after_and_the_request_id(
    client: httpx.Client, node
) -> None:
    with _api_servers_in_maintenance(node):
        rid = f"test-503-{uuid.uuid4()}"
        # HAProxy's own answer, passed through nginx untouched
        r = client.get("/v1/shipments", headers={"X-Request-ID": rid})
        _assert_unavailable(r, 503, rid)
        assert "No API node is available" in r.json()["detail"]
    with _load_balancer_refused(node):
        for url in (f"{URL}/v1/shipments", f"http://{EDGE_IP}/readyz"):  # both listeners of nginx
            rid = f"test-502-{uuid.uuid4()}"
            _assert_unavailable(client.get(url, headers={"X-Request-ID": rid}), 502, rid)
    assert client.get("/readyz").status_code == 200  # back as it was
