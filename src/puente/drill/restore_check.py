"""The restore drill's verdict: which shipments a restored database must hold, must not hold, and holds.

Pure functions (attempts and row digests in, figures out), unit-tested on synthetic data. Definitions,
also in docs/RESTORE.md:

- **Acknowledged before T**: a write whose successful response ENDED before T (the drill's monotonic
  clock) — its commit happened before T, so a restore to T must hold it, with the same content.
- **Written after T**: a write whose logical request STARTED after T (it cannot have committed before T),
  or a row whose ``created_at`` (the inserting transaction's start) is after T. A restore to T must not
  hold it.
- Writes in flight at T are neither (counted as ``in_flight_at_t``, not judged).
- Content: a digest of the shipment's immutable columns (id, client, service, reference, sender,
  recipient, parcels) read from the leader before the destructive step, compared with the restored row's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from puente.drill.attempts import WRITE, Attempt

# The digest both sides compute (the leader before the damage, the restored node after): immutable columns
# only, so the worker's later label/status updates do not count as a difference.
DIGEST_SQL = (
    "SELECT id, md5(concat_ws('|', id, client_id, service, reference, sender::text, recipient::text, "
    "parcels::text)), extract(epoch FROM created_at), coalesce(reference, '') "
    "FROM shipments WHERE client_id = '{client}' ORDER BY id"
)


@dataclass(frozen=True)
class Row:
    digest: str
    created_at: float
    """Unix time of the inserting transaction's start."""
    reference: str = ""
    """The drill puts the write's Idempotency-Key there."""


def parse_rows(text: str) -> dict[str, Row]:
    """``id|digest|created_epoch|reference`` lines (psql -At) to rows by id."""
    rows: dict[str, Row] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0]:
            rows[parts[0]] = Row(parts[1], float(parts[2]), parts[3])
    return rows


@dataclass(frozen=True)
class Expectation:
    before: dict[str, float]
    """shipment id -> when its acknowledgement ended (monotonic), for writes acknowledged before T."""
    after: set[str]
    """shipment ids that cannot have committed before T."""
    in_flight: set[str]
    """acknowledged writes in flight at T (started before, answered after): not judged."""
    keys: dict[str, str]
    """shipment id -> the Idempotency-Key that made it (the drill's rows carry it as reference)."""


def expectation(attempts: Sequence[Attempt], t_mono: float) -> Expectation:
    """Split the acknowledged writes of the load around T (see the module doc)."""
    first_start: dict[int, float] = {}
    for a in attempts:
        if a.op == WRITE:
            first_start[a.request] = min(first_start.get(a.request, a.started), a.started)
    before: dict[str, float] = {}
    after: set[str] = set()
    in_flight: set[str] = set()
    keys: dict[str, str] = {}
    for a in attempts:
        if a.op != WRITE or not a.ok or not a.shipment_id:
            continue
        keys[a.shipment_id] = a.key or ""
        if a.ended <= t_mono:
            before[a.shipment_id] = min(before.get(a.shipment_id, a.ended), a.ended)
        elif first_start[a.request] > t_mono:
            after.add(a.shipment_id)
        else:
            in_flight.add(a.shipment_id)
    in_flight -= set(before)
    after -= set(before) | in_flight
    return Expectation(before, after, in_flight, keys)


@dataclass(frozen=True)
class Verdict:
    acknowledged_before_t: int
    missing: list[str]
    changed: list[str]
    written_after_t: int
    present_after_t: list[str]
    in_flight_at_t: int
    restored_rows: int

    @property
    def passed(self) -> bool:
        return not (self.missing or self.changed or self.present_after_t)

    def as_dict(self) -> dict[str, Any]:
        return {
            "acknowledged_before_t": self.acknowledged_before_t,
            "missing": len(self.missing),
            "missing_ids": self.missing[:50],
            "changed": len(self.changed),
            "changed_ids": self.changed[:50],
            "written_after_t": self.written_after_t,
            "present_after_t": len(self.present_after_t),
            "present_after_t_ids": self.present_after_t[:50],
            "in_flight_at_t": self.in_flight_at_t,
            "restored_rows": self.restored_rows,
        }


def judge(
    exp: Expectation, snapshot: Mapping[str, Row], restored: Mapping[str, Row], t_unix: float | None
) -> Verdict:
    """Compare the restored rows with what had to be there (``t_unix`` None: latest, nothing excluded)."""
    missing = sorted(i for i in exp.before if i not in restored)
    changed = sorted(
        i
        for i in exp.before
        if i in restored
        and (
            (i in snapshot and restored[i].digest != snapshot[i].digest)
            or (exp.keys.get(i) and restored[i].reference != exp.keys[i])
        )
    )
    late = set(exp.after)
    if t_unix is not None:
        late |= {i for i, row in snapshot.items() if row.created_at > t_unix and i not in exp.before}
    present = sorted(i for i in late if i in restored)
    return Verdict(
        acknowledged_before_t=len(exp.before),
        missing=missing,
        changed=changed,
        written_after_t=len(late),
        present_after_t=present,
        in_flight_at_t=len(exp.in_flight),
        restored_rows=len(restored),
    )


def lost_window(exp: Expectation, missing: Iterable[str], loss_mono: float) -> float:
    """Seconds of acknowledged writes lost before the loss at ``loss_mono``: from the earliest missing
    acknowledgement to the loss (0 when none is missing) — the measured RPO of ``--latest``."""
    ends = [exp.before[i] for i in missing if i in exp.before]
    return round(loss_mono - min(ends), 3) if ends else 0.0


def wal_bytes(redo_start: str | None, redo_done: str | None) -> int | None:
    """Bytes between two LSNs ``X/Y`` (PostgreSQL's "redo starts at" / "redo done at")."""
    if not redo_start or not redo_done:
        return None

    def value(lsn: str) -> int:
        hi, lo = lsn.split("/")
        return (int(hi, 16) << 32) + int(lo, 16)

    return value(redo_done) - value(redo_start)
