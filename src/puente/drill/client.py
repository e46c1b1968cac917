"""The drill's load: what a well-behaved client of the API does, recorded attempt by attempt.

- resolves the API's name through the failover DNS and honours the TTL (``TtlResolver``);
- connects to the address it got and verifies TLS against the lab CA for the NAME (SNI + hostname check);
- authenticates with an API key (Authorization: Bearer);
- writes with an Idempotency-Key, and retries the SAME key after a 503, 5xx, 409, 429,
  a connection error or a timeout, with capped exponential backoff and full jitter, honouring
  Retry-After; gives up on a request after ``request_deadline`` seconds;
- reads back shipments it created (GET /v1/shipments/{id}); a GET is idempotent and retried the same way.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from puente.drill.attempts import READ, VERIFY, WRITE, Attempt, AttemptLog
from puente.drill.resolver import DnsError, TtlResolver

SITE_HEADER = "X-Puente-Site"
RETRY_STATUSES = frozenset({409, 425, 429, 500, 502, 503, 504})
"""409: the same key is still in flight elsewhere (IETF idempotency draft); 500 is retried only because
every request here is idempotent (GET, or POST with a key) — it is still counted as an error."""


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.1
    cap: float = 1.0
    """Backoff cap kept low: the drill's RTO resolution is bounded by it."""
    request_deadline: float = 60.0
    retry_after_cap: float = 2.0

    def delay(self, try_no: int, retry_after: float | None = None) -> float:
        """Full jitter (AWS architecture blog, "Exponential Backoff And Jitter")."""
        backoff = random.uniform(0, min(self.cap, self.base * 2 ** (try_no - 1)))
        if retry_after is not None:
            return max(backoff, min(retry_after, self.retry_after_cap))
        return backoff


@dataclass
class ClientConfig:
    name: str
    """DNS name of the API (the failover record)."""
    dns_server: str
    dns_port: int = 53
    port: int = 443
    scheme: str = "https"
    ca_file: Path | None = None
    client_id: str = field(default_factory=lambda: f"drill-{uuid.uuid4().hex[:12]}")
    """The client the API key belongs to (``puente keys create CLIENT``); its rows are the drill's."""
    api_key: str = ""
    """Sent as ``Authorization: Bearer``; the API takes the caller's identity from it alone."""
    connect_timeout: float = 1.0
    read_timeout: float = 3.0
    site_of_address: dict[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, DnsError):
        return "dns"
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return (
            "tls"
            if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError) or "SSL" in str(exc)
            else "connect"
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "reset"
    return type(exc).__name__


def shipment_body(key: str) -> dict[str, Any]:
    """A valid shipment; ``reference`` carries the key so the database shows which key made which row."""
    return {
        "sender": {
            "name": "Puente Drill",
            "street": "1 Failover Way",
            "city": "Lab",
            "postal_code": "1000",
            "country": "ES",
        },
        "recipient": {
            "name": "Site Cloud",
            "street": "2 Region Road",
            "city": "Lab",
            "postal_code": "2000",
            "country": "PT",
        },
        "parcels": [{"weight_grams": 1200, "length_cm": 30, "width_cm": 20, "height_cm": 10}],
        "service": "standard",
        "reference": key,
    }


class DrillClient:
    """Sends one logical request at a time per thread; every try lands in ``log``."""

    def __init__(self, config: ClientConfig, log: AttemptLog, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.log = log
        self.clock = clock
        self.resolver = TtlResolver(config.dns_server, config.dns_port, timeout=config.connect_timeout)
        verify: ssl.SSLContext | bool = True
        if config.scheme == "https":
            verify = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        self.http = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._request_no = 0
        self._lock = threading.Lock()
        self.known: list[str] = []
        """Shipment ids acknowledged so far (reads pick among them)."""

    def close(self) -> None:
        self.http.close()

    def _next_request(self) -> int:
        with self._lock:
            self._request_no += 1
            return self._request_no

    # -- one try -----------------------------------------------------------------------------------
    def _try(
        self,
        op: str,
        method: str,
        path: str,
        request: int,
        try_no: int,
        *,
        key: str | None = None,
        body: dict[str, Any] | None = None,
        shipment_id: str | None = None,
    ) -> tuple[Attempt, httpx.Response | None]:
        cfg = self.config
        started = self.clock()
        address = None
        headers = {
            "Host": cfg.name,
            **self.auth_headers(),
            "X-Request-ID": f"{cfg.client_id}-{request}-{try_no}",
        }
        if key:
            # a structured-field String (RFC 8941), as the IETF httpapi draft defines the header
            headers["Idempotency-Key"] = f'"{key}"'
        try:
            address = self.resolver.pick(cfg.name, try_no - 1)
            response = self.http.request(
                method,
                f"{cfg.scheme}://{address}:{cfg.port}{path}",
                headers=headers,
                json=body,
                extensions={"sni_hostname": cfg.name} if cfg.scheme == "https" else None,
            )
        except (DnsError, httpx.HTTPError) as exc:
            attempt = Attempt(
                started,
                self.clock(),
                op,
                request,
                try_no,
                error=error_kind(exc),
                site=cfg.site_of_address.get(address or ""),
                address=address,
                key=key,
                shipment_id=shipment_id,
            )
            self.log.add(attempt)
            return attempt, None
        site = response.headers.get(SITE_HEADER) or cfg.site_of_address.get(address)
        ok = response.status_code in ((200, 201) if op == WRITE else (200,))
        if ok and op == WRITE:
            try:
                shipment_id = str(response.json()["id"])
            except (ValueError, KeyError, TypeError):
                ok, shipment_id = False, None
        attempt = Attempt(
            started,
            self.clock(),
            op,
            request,
            try_no,
            status=response.status_code,
            error=None if ok else f"http_{response.status_code}",
            site=site,
            address=address,
            key=key,
            shipment_id=shipment_id,
        )
        self.log.add(attempt)
        return attempt, response

    # -- one logical request, with retries --------------------------------------------------------------
    def _request(
        self,
        op: str,
        method: str,
        path: str,
        *,
        key: str | None = None,
        body: dict[str, Any] | None = None,
        shipment_id: str | None = None,
        stop: threading.Event | None = None,
    ) -> Attempt:
        request = self._next_request()
        deadline = self.clock() + self.config.retry.request_deadline
        try_no = 1
        while True:
            attempt, response = self._try(
                op, method, path, request, try_no, key=key, body=body, shipment_id=shipment_id
            )
            retryable = attempt.error is not None and (
                response is None or response.status_code in RETRY_STATUSES
            )
            if not retryable or self.clock() >= deadline:
                return attempt
            # no forced re-resolution on connection errors: the next try asks DNS only once the TTL
            # allows, as a stub resolver's client would (the address rotates among the answers meanwhile)
            pause = self.config.retry.delay(try_no, _retry_after(response))
            if stop is not None and op != VERIFY:
                if stop.wait(pause) and op == READ:
                    return attempt
            else:
                time.sleep(pause)
            try_no += 1

    def create(self, stop: threading.Event | None = None) -> Attempt:
        key = str(uuid.uuid4())
        attempt = self._request(WRITE, "POST", "/v1/shipments", key=key, body=shipment_body(key), stop=stop)
        if attempt.ok and attempt.shipment_id:
            with self._lock:
                self.known.append(attempt.shipment_id)
        return attempt

    def read(self, shipment_id: str, stop: threading.Event | None = None) -> Attempt:
        return self._request(READ, "GET", f"/v1/shipments/{shipment_id}", shipment_id=shipment_id, stop=stop)

    def verify(self, shipment_id: str) -> Attempt:
        """Read back one acknowledged shipment after the drill (404 = lost; retried otherwise)."""
        return self._request(VERIFY, "GET", f"/v1/shipments/{shipment_id}", shipment_id=shipment_id)

    def auth_headers(self, api_key: str | None = None) -> dict[str, str]:
        key = self.config.api_key if api_key is None else api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def get_json(self, path: str, api_key: str | None = None) -> tuple[int, dict[str, Any]]:
        """One plain GET through the DNS name (preflight): status and JSON body (empty if none)."""
        status, data, _site = self.probe(path, api_key)
        return status, data

    def probe(self, path: str, api_key: str | None = None) -> tuple[int, dict[str, Any], str | None]:
        """One GET through the DNS name, with this client's key or ``api_key``: status, JSON body, and
        the site that answered."""
        cfg = self.config
        address = self.resolver.pick(cfg.name)
        response = self.http.get(
            f"{cfg.scheme}://{address}:{cfg.port}{path}",
            headers={"Host": cfg.name, **self.auth_headers(api_key)},
            extensions={"sni_hostname": cfg.name} if cfg.scheme == "https" else None,
        )
        try:
            data = response.json()
        except ValueError:
            data = {}
        site = response.headers.get(SITE_HEADER) or cfg.site_of_address.get(address)
        return response.status_code, data if isinstance(data, dict) else {}, site


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class LoadShape:
    workers: int = 4
    write_ratio: float = 0.3
    think: float = 0.02
    """Pause between a worker's requests: bounded load on a shared 2-core machine."""
    max_requests: int = 20000


class Load:
    """Background threads making a read/write mix until stopped or ``max_requests`` is reached."""

    def __init__(self, client: DrillClient, shape: LoadShape = LoadShape()) -> None:
        self.client = client
        self.shape = shape
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sent = 0
        self._lock = threading.Lock()

    def _take(self) -> bool:
        with self._lock:
            if self._sent >= self.shape.max_requests:
                return False
            self._sent += 1
            return True

    def _worker(self) -> None:
        while not self.stop_event.is_set() and self._take():
            known = self.client.known
            if not known or random.random() < self.shape.write_ratio:
                self.client.create(self.stop_event)
            else:
                self.client.read(random.choice(known), self.stop_event)
            self.stop_event.wait(self.shape.think)

    def start(self) -> None:
        for i in range(self.shape.workers):
            t = threading.Thread(target=self._worker, name=f"drill-load-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 90.0) -> None:
        """Stop taking new requests; writes in flight finish their retries (a client does not drop
        a write it started), reads stop retrying."""
        self.stop_event.set()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
