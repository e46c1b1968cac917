"""A stub resolver that asks one DNS server directly and honours the TTL it gets, like a client's cache.

The drill must see the failover DNS the way a client does: an answer is reused until its TTL expires,
then asked again. Asking the system resolver would add its own cache and the host's configuration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


class DnsError(RuntimeError):
    """The name could not be resolved (timeout, refusal, no address)."""


@dataclass(frozen=True)
class Answer:
    addresses: tuple[str, ...]
    ttl: int
    expires: float
    """On the resolver's clock."""


class TtlResolver:
    """Resolves A records at ``server:port`` over UDP and caches each answer for its TTL.

    ``clock`` is injectable so tests can move time instead of sleeping.
    """

    def __init__(
        self,
        server: str,
        port: int = 53,
        *,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self.port = port
        self.timeout = timeout
        self.clock = clock
        self.queries = 0
        """How many queries were sent (the cache's hits send none)."""
        self._cache: dict[str, Answer] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str) -> Answer:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(name)
            if cached and now < cached.expires:
                return cached
        answer = self._query(name, now)
        with self._lock:
            self._cache[name] = answer
        return answer

    def forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)

    def _query(self, name: str, now: float) -> Answer:
        query = dns.message.make_query(name, dns.rdatatype.A)
        query.flags &= ~dns.flags.RD  # an authoritative server: no recursion wanted
        with self._lock:
            self.queries += 1
        try:
            response = dns.query.udp(query, self.server, port=self.port, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsError(
                f"{name}: no answer from {self.server}:{self.port} ({type(exc).__name__})"
            ) from exc
        if response.rcode() != dns.rcode.NOERROR:
            raise DnsError(f"{name}: {dns.rcode.to_text(response.rcode())} from {self.server}:{self.port}")
        addresses: list[str] = []
        ttl: int | None = None
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.A:
                addresses += [r.address for r in rrset]
                ttl = rrset.ttl if ttl is None else min(ttl, rrset.ttl)
        if not addresses or ttl is None:
            raise DnsError(f"{name}: no A record from {self.server}:{self.port}")
        return Answer(tuple(addresses), ttl, now + ttl)

    def pick(self, name: str, attempt: int = 0) -> str:
        """The address to connect to: the first one, the next one on each retry (as getaddrinfo users do)."""
        addresses = self.resolve(name).addresses
        return addresses[attempt % len(addresses)]
