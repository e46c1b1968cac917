"""Per-client rate limit: a token bucket per client id, in the API process (edge.Edge applies it right
after authentication). Each API process keeps its own buckets, so a client's limit across a deployment
is the per-process limit times the number of API processes serving it (nodes x workers).

The answers carry the RateLimit header fields of draft-ietf-httpapi-ratelimit-headers (-09 and later):

* ``RateLimit-Policy: "default";q=<quota>;w=<window>``: the bucket as a quota per window -- ``w`` is the
  time an empty bucket takes to fill (``ceil(burst / rate)``, at least 1 s) and ``q = rate x w``;
* ``RateLimit: "default";r=<remaining>;t=<seconds>``: the requests left in the bucket now and the seconds
  until it is full again; on a 429, ``r=0`` and ``t`` is the wait for the next request, as Retry-After.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

Header = tuple[bytes, bytes]
# Past this many buckets, the full ones (a client idle long enough) are dropped: same as absent.
MAX_CLIENTS = 100_000


class RateLimiter:
    def __init__(
        self,
        per_second: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if per_second < 1 or burst < 1:
            raise ValueError("a rate limit needs a rate and a burst of at least 1")
        self.rate = float(per_second)
        self.burst = float(burst)
        self.window = max(1, math.ceil(burst / per_second))
        self.quota = per_second * self.window
        # the RateLimit-Policy field: the same on every answer
        self.policy: Header = (b"ratelimit-policy", b'"default";q=%d;w=%d' % (self.quota, self.window))
        self._clock = clock
        self._max_clients = max_clients
        # client id -> [tokens, when they were counted]
        self._buckets: dict[str, list[float]] = {}

    def take(self, client_id: str) -> tuple[int, Header]:
        """Count one request of ``client_id``: (0, its RateLimit field) when it may go ahead, else
        (the seconds to wait, its RateLimit field) -- a 429. Per request, so kept to plain arithmetic."""
        now = self._clock()
        bucket = self._buckets.get(client_id)
        if bucket is None:
            if len(self._buckets) >= self._max_clients:
                self._drop_full(now)
            bucket = self._buckets[client_id] = [self.burst, now]
            tokens = self.burst
        else:
            tokens = bucket[0] + (now - bucket[1]) * self.rate
            if tokens > self.burst:
                tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            tokens -= 1.0
            bucket[0] = tokens
            full_in = -((tokens - self.burst) // self.rate)  # ceil((burst - tokens) / rate)
            return 0, (b"ratelimit", b'"default";r=%d;t=%d' % (tokens, full_in))
        bucket[0] = tokens
        wait = max(1, math.ceil((1.0 - tokens) / self.rate))
        return wait, (b"ratelimit", b'"default";r=0;t=%d' % wait)

    def _drop_full(self, now: float) -> None:
        for client_id in [
            c for c, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst
        ]:
            del self._buckets[client_id]
