"""One record per HTTP attempt the drill client makes: the raw material of every figure in the report."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

READ = "read"
WRITE = "write"
VERIFY = "verify"
"""Read-back of an acknowledged write after the drill (not part of the load, never counted in RTO)."""


@dataclass(frozen=True)
class Attempt:
    """One try of one logical request. Times are seconds on the drill's monotonic clock."""

    started: float
    ended: float
    op: str
    request: int
    """Logical request number: the retries of one request share it."""
    try_no: int
    status: int | None = None
    error: str | None = None
    """Kind of failure, None on success: dns, connect, timeout, tls, reset, http_503, http_404, ..."""
    site: str | None = None
    """Which site answered (the API's X-Puente-Site header, else the site owning the address)."""
    address: str | None = None
    key: str | None = None
    """Idempotency-Key of a write (the same on every retry)."""
    shipment_id: str | None = None
    """Shipment the response named (writes) or that was asked for (reads)."""

    @property
    def ok(self) -> bool:
        return self.error is None


class AttemptLog:
    """Thread-safe, append-only list of attempts, optionally mirrored to a JSON-lines file."""

    def __init__(self, path: Path | None = None) -> None:
        self._items: list[Attempt] = []
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8") if path else None

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._items.append(attempt)
            if self._file:
                self._file.write(json.dumps(asdict(attempt)) + "\n")

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[Attempt]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def load_jsonl(path: Path) -> list[Attempt]:
    names = {f.name for f in fields(Attempt)}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(Attempt(**{k: v for k, v in json.loads(line).items() if k in names}))
    return out


def dump_jsonl(attempts: Iterable[Attempt], path: Path) -> None:
    path.write_text("".join(json.dumps(asdict(a)) + "\n" for a in attempts), encoding="utf-8")
