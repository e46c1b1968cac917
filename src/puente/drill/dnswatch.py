"""Where the failover DNS points, asked once a second during a drill (the report's DNS lane).

The client's own resolver honours the TTL, so its answers show what a client used; this asks the
server itself every second, so the page shows when the DNS changed its answer and the client's
attempts show how long clients kept the old one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from puente.drill.resolver import DnsError, TtlResolver
from puente.drill.timeline import DnsSample


class DnsSampler:
    """Background thread: one uncached A query for ``name`` per ``interval``; ``samples`` carry the
    time on ``clock`` (the drill's) when the query was sent."""

    def __init__(
        self,
        server: str,
        port: int,
        name: str,
        *,
        interval: float = 1.0,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.interval = interval
        self.clock = clock
        self.samples: list[DnsSample] = []
        self._resolver = TtlResolver(server, port, timeout=timeout, clock=clock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-dns-sampler", daemon=True)

    def ask(self) -> DnsSample:
        t = self.clock()
        self._resolver.forget(self.name)
        try:
            return DnsSample(t, self._resolver.resolve(self.name).addresses)
        except DnsError as exc:
            return DnsSample(t, (), str(exc))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.ask())
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[DnsSample]:
        self._stop.set()
        self._thread.join(10)
        return list(self.samples)
