"""The drill's analysis: from the attempt log and the cluster's facts to figures and a verdict.

Every function here is pure (attempts and facts in, numbers out) so each figure is unit-tested on
synthetic logs. Definitions, also in docs/FAILOVER.md:

- RTO of an operation type: seconds from the fault until the first success after which that operation
  never failed again before the fault was lifted. A flapping service therefore counts as still down.
  Attempts are ordered by their start; the success's END is when the client saw it.
- Acknowledged write: a POST that got 201 (or 200, an idempotent replay). Lost: its shipment's read-back
  after the drill answered 404. Unverified: the read-back never got an answer (also a failure).
- Duplicate effects: an Idempotency-Key whose responses named two shipment ids (client view), a
  reference (= the key) held by two shipments, or a shipment with more than one label (server view).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from puente.drill.attempts import READ, VERIFY, WRITE, Attempt

LEADER_ROLES = frozenset({"leader", "master", "primary"})
REPLICA_ROLES = frozenset({"replica", "sync_standby", "standby"})
HEALTHY_REPLICA_STATES = frozenset({"streaming", "running"})


@dataclass(frozen=True)
class Rto:
    seconds: float | None
    """None: never recovered inside the window."""
    failed_attempts: int
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "failed_attempts": self.failed_attempts, "attempts": self.attempts}


def rto(attempts: Iterable[Attempt], op: str, fault_at: float, until: float) -> Rto:
    """Seconds from ``fault_at`` until ``op`` succeeded for good (see the module doc), within ``until``."""
    window = sorted(
        (a for a in attempts if a.op == op and fault_at <= a.started < until), key=lambda a: a.started
    )
    failures = [a for a in window if not a.ok]
    if not failures:
        return Rto(0.0 if window else None, 0, len(window))
    last_failure = failures[-1].started
    after = [a.ended for a in window if a.ok and a.started > last_failure]
    seconds = round(min(after) - fault_at, 3) if after else None
    return Rto(seconds, len(failures), len(window))


def acknowledged(attempts: Iterable[Attempt]) -> dict[str, set[str]]:
    """Idempotency-Key -> shipment ids named by the successful responses to it."""
    acks: dict[str, set[str]] = defaultdict(set)
    for a in attempts:
        if a.op == WRITE and a.ok and a.key and a.shipment_id:
            acks[a.key].add(a.shipment_id)
    return dict(acks)


@dataclass(frozen=True)
class LostWrites:
    acknowledged: int
    lost: list[str]
    unverified: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged,
            "lost": len(self.lost),
            "lost_ids": self.lost,
            "unverified": len(self.unverified),
            "unverified_ids": self.unverified,
        }


def lost_writes(attempts: Sequence[Attempt]) -> LostWrites:
    """Every acknowledged shipment must read back with 200 after the drill."""
    ids = sorted({i for s in acknowledged(attempts).values() for i in s})
    readback: dict[str, set[int | None]] = defaultdict(set)
    for a in attempts:
        if a.op == VERIFY and a.shipment_id:
            readback[a.shipment_id].add(a.status)
    lost = [i for i in ids if 200 not in readback[i] and 404 in readback[i]]
    unverified = [i for i in ids if 200 not in readback[i] and 404 not in readback[i]]
    return LostWrites(len(ids), lost, unverified)


def duplicate_keys(attempts: Iterable[Attempt]) -> dict[str, list[str]]:
    """Keys whose responses named more than one shipment (the client's own view of duplicates)."""
    return {k: sorted(v) for k, v in acknowledged(attempts).items() if len(v) > 1}


@dataclass(frozen=True)
class DbFacts:
    """What the database holds for the drill's client id (read-only query on the leader)."""

    shipments: int
    references_with_many: dict[str, int] = field(default_factory=dict)
    """reference (the drill puts the Idempotency-Key there) -> shipments holding it, only when > 1."""
    shipments_with_many_labels: dict[str, int] = field(default_factory=dict)
    labels: int = 0
    labels_pending: int = 0
    dead_lettered: int | None = None
    """Messages in the dead-letter queue, None when it could not be read."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DbFacts:
        return cls(
            shipments=int(data["shipments"]),
            references_with_many={
                str(k): int(v) for k, v in (data.get("references_with_many") or {}).items()
            },
            shipments_with_many_labels={
                str(k): int(v) for k, v in (data.get("shipments_with_many_labels") or {}).items()
            },
            labels=int(data.get("labels", 0)),
            labels_pending=int(data.get("labels_pending", 0)),
            dead_lettered=None if data.get("dead_lettered") is None else int(data["dead_lettered"]),
        )


def duplicate_effects(attempts: Sequence[Attempt], db: DbFacts | None) -> dict[str, Any]:
    """Count every duplicate effect seen from either side; ``total`` must be 0."""
    client = duplicate_keys(attempts)
    out: dict[str, Any] = {"keys_with_many_shipments": client, "db_checked": db is not None}
    total = sum(len(v) - 1 for v in client.values())
    if db is not None:
        out["references_with_many_shipments"] = db.references_with_many
        out["shipments_with_many_labels"] = db.shipments_with_many_labels
        total += sum(n - 1 for n in db.references_with_many.values())
        total += sum(n - 1 for n in db.shipments_with_many_labels.values())
        out["labels"] = db.labels
        out["labels_pending"] = db.labels_pending
        out["dead_lettered"] = db.dead_lettered
    out["total"] = total
    return out


def errors_by_kind(attempts: Iterable[Attempt]) -> dict[str, Any]:
    """Failed attempts by kind, and the logical requests the client finally gave up on (by last kind)."""
    load = [a for a in attempts if a.op in (READ, WRITE)]
    per_attempt = Counter(a.error for a in load if a.error)
    last: dict[int, Attempt] = {}
    for a in load:
        if a.request not in last or a.try_no > last[a.request].try_no:
            last[a.request] = a
    gave_up = Counter(a.error for a in last.values() if a.error)
    return {
        "attempts": dict(sorted(per_attempt.items())),
        "requests_failed": dict(sorted(gave_up.items())),
        "requests": len(last),
        "retried_requests": sum(1 for a in last.values() if a.try_no > 1),
    }


def write_gap(attempts: Iterable[Attempt], start: float, end: float) -> dict[str, Any]:
    """The longest time in [start, end] without an acknowledged write (acknowledgements placed when the
    client got them), and the write attempts that failed in it, by kind."""
    writes = [a for a in attempts if a.op == WRITE]
    acks = sorted(a.ended for a in writes if a.ok and start <= a.ended <= end)
    edges = [start, *acks, end]
    gap_from, gap_to = max(itertools.pairwise(edges), key=lambda p: p[1] - p[0])
    failed = Counter(a.error or "?" for a in writes if not a.ok and gap_from <= a.started < gap_to)
    return {
        "seconds": round(gap_to - gap_from, 3),
        "from": round(gap_from, 3),
        "to": round(gap_to, 3),
        "failed_attempts": sum(failed.values()),
        "failed_by_kind": dict(sorted(failed.items())),
    }


def sync_standbys(members: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(str(m.get("name")) for m in members if m.get("role") == "sync_standby")


def timelines(members: Sequence[Mapping[str, Any]]) -> list[int]:
    return sorted({int(m["timeline"]) for m in members if m.get("role") in LEADER_ROLES and "timeline" in m})


def patroni_noticed(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]], primaries_seen: Iterable[str]
) -> dict[str, Any]:
    """Whether Patroni noticed a fault at all: the leader, its timeline and the synchronous standby before
    and after (``/cluster``), and every member that answered 200 on ``/primary`` during the fault."""
    seen = sorted(set(primaries_seen))
    old = leaders(before)
    out: dict[str, Any] = {
        "leader_before": old,
        "leader_after": leaders(after),
        "timeline_before": timelines(before),
        "timeline_after": timelines(after),
        "sync_standby_before": sync_standbys(before),
        "sync_standby_after": sync_standbys(after),
        "primaries_seen_during_fault": seen,
    }
    out["leader_unchanged"] = (
        len(old) == 1
        and out["leader_after"] == old
        and out["timeline_after"] == out["timeline_before"]
        and set(seen) <= set(old)
    )
    out["sync_standby_unchanged"] = out["sync_standby_after"] == out["sync_standby_before"]
    return out


def answered_by(attempts: Iterable[Attempt]) -> dict[str, int]:
    return dict(sorted(Counter(a.site or "?" for a in attempts if a.ok and a.op in (READ, WRITE)).items()))


def replication_lag(members: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Patroni /cluster members -> lag of each replica (bytes; "unknown" kept as None) and the max."""
    lags: dict[str, int | None] = {}
    for m in members:
        if m.get("role") in LEADER_ROLES:
            continue
        lag = m.get("lag")
        lags[str(m.get("name"))] = lag if isinstance(lag, int) else None
    known = [v for v in lags.values() if v is not None]
    return {"replicas": lags, "max_bytes": max(known) if known else None}


def leaders(members: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(str(m.get("name")) for m in members if m.get("role") in LEADER_ROLES)


def fencing(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]], max_leaders_seen: int | None
) -> dict[str, Any]:
    """The old leader must be back as a healthy replica, with exactly one leader, and no moment during
    the fault where two members said they were the leader (``max_leaders_seen``, from samples)."""
    old = leaders(before)
    now = leaders(after)
    roles = {str(m.get("name")): (m.get("role"), m.get("state")) for m in after}
    old_name = old[0] if len(old) == 1 else None
    old_role, old_state = roles.get(old_name or "", (None, None))
    failed_over = bool(old_name and now and now != [old_name])
    rejoined = old_role in REPLICA_ROLES and old_state in HEALTHY_REPLICA_STATES
    return {
        "old_leader": old_name,
        "leader_now": now,
        "old_leader_role": old_role,
        "old_leader_state": old_state,
        "failed_over": failed_over,
        "leaders_now": len(now),
        "max_leaders_seen_during_fault": max_leaders_seen,
        "fenced": len(now) == 1
        and (rejoined if failed_over else now == [old_name])
        and (max_leaders_seen is None or max_leaders_seen <= 1),
    }


@dataclass(frozen=True)
class Thresholds:
    rto_read: float = 5.0
    rto_write: float = 15.0


def analyse(
    attempts: Sequence[Attempt],
    *,
    scenario: str,
    fault_at: float,
    restore_at: float,
    ended_at: float,
    cluster_before: Sequence[Mapping[str, Any]] = (),
    cluster_after: Sequence[Mapping[str, Any]] = (),
    max_leaders_seen: int | None = None,
    db: DbFacts | None = None,
    thresholds: Thresholds = Thresholds(),
    expect_failover: bool = True,
    expect_recovery: bool = True,
) -> dict[str, Any]:
    """The whole report (JSON-ready) with a ``checks`` list and an overall ``passed``."""
    rto_read = rto(attempts, READ, fault_at, restore_at)
    rto_write = rto(attempts, WRITE, fault_at, restore_at)
    lost = lost_writes(attempts)
    dups = duplicate_effects(attempts, db)
    report: dict[str, Any] = {
        "scenario": scenario,
        "timeline": {"fault_at": fault_at, "restore_at": restore_at, "ended_at": ended_at},
        "rto": {"read": rto_read.as_dict(), "write": rto_write.as_dict()},
        "rto_after_restore": {
            "read": rto(attempts, READ, restore_at, ended_at).as_dict(),
            "write": rto(attempts, WRITE, restore_at, ended_at).as_dict(),
        },
        "writes": lost.as_dict(),
        "duplicate_effects": dups,
        "errors": errors_by_kind(attempts),
        "answered_by": answered_by(attempts),
        "replication_lag_before": replication_lag(cluster_before),
        "write_gap": write_gap(attempts, fault_at, ended_at),
    }
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "ok": bool(ok), "detail": detail})

    if expect_recovery:
        for op, r, limit in (
            ("read", rto_read, thresholds.rto_read),
            ("write", rto_write, thresholds.rto_write),
        ):
            shown = "never recovered" if r.seconds is None else f"{r.seconds:.2f} s"
            check(f"rto_{op}", r.seconds is not None and r.seconds <= limit, f"{shown} (limit {limit:g} s)")
    else:
        # nowhere to fail over to: the honest answer during the fault is "unavailable, retry"
        during = [a for a in attempts if a.op == WRITE and fault_at <= a.started < restore_at and a.status]
        refused = Counter(a.status for a in during if a.status not in (200, 201))
        check(
            "unavailable_means_503",
            set(refused) <= {503},
            f"answers to writes during the fault: {dict(sorted(refused.items())) or 'none refused'}",
        )
    # the contract: 503 + Retry-After while a site cannot serve, never a generic 500 (502/504 from the
    # edge are reported by kind above; they are not the API's answer)
    generic = sum(1 for a in attempts if a.status == 500)
    check("no_generic_500", generic == 0, f"{generic} answers were 500")
    check(
        "acknowledged_writes_lost",
        not lost.lost and not lost.unverified,
        f"{len(lost.lost)} lost, {len(lost.unverified)} unverified of {lost.acknowledged}",
    )
    check("acknowledged_writes", lost.acknowledged > 0, f"{lost.acknowledged} writes acknowledged")
    check(
        "duplicate_effects",
        dups["total"] == 0 and db is not None,
        f"{dups['total']} duplicate effects" + ("" if db is not None else " (database not checked)"),
    )
    if db is not None and db.dead_lettered is not None:
        check("dead_lettered", db.dead_lettered == 0, f"{db.dead_lettered} messages in the dead-letter queue")
    if cluster_before or cluster_after:
        fence = fencing(cluster_before, cluster_after, max_leaders_seen)
        report["database"] = fence
        check(
            "one_leader_no_split_brain",
            fence["leaders_now"] == 1 and (max_leaders_seen is None or max_leaders_seen <= 1),
            f"{fence['leaders_now']} leader(s) now, at most {max_leaders_seen} seen during the fault",
        )
        if expect_failover:
            check(
                "old_primary_fenced",
                fence["fenced"] and fence["failed_over"],
                f"old leader {fence['old_leader']} is {fence['old_leader_role']}/{fence['old_leader_state']},"
                f" leader now {fence['leader_now']}",
            )
    report["checks"] = checks
    report["passed"] = all(c["ok"] for c in checks)
    return report


def table(report: Mapping[str, Any]) -> str:
    """A short human table of the report."""

    def secs(v: float | None) -> str:
        return "never" if v is None else f"{v:.2f} s"

    lag = report["replication_lag_before"]["max_bytes"]
    rows = [
        ("scenario", report["scenario"] + (f" (fault: {report['fault']})" if report.get("fault") else "")),
        ("RTO reads", secs(report["rto"]["read"]["seconds"])),
        ("RTO writes", secs(report["rto"]["write"]["seconds"])),
        (
            "after restore: reads / writes",
            f"{secs(report['rto_after_restore']['read']['seconds'])} / "
            f"{secs(report['rto_after_restore']['write']['seconds'])}",
        ),
        ("writes acknowledged", str(report["writes"]["acknowledged"])),
        (
            "acknowledged writes lost",
            f"{report['writes']['lost']} (+{report['writes']['unverified']} unverified)",
        ),
        ("duplicate effects", str(report["duplicate_effects"]["total"])),
        (
            "failed attempts by kind",
            ", ".join(f"{k}={v}" for k, v in report["errors"]["attempts"].items()) or "-",
        ),
        (
            "requests given up",
            ", ".join(f"{k}={v}" for k, v in report["errors"]["requests_failed"].items()) or "0",
        ),
        ("answered by", ", ".join(f"{k}={v}" for k, v in report["answered_by"].items()) or "-"),
        *_gap_row(report),
        ("replication lag before (max)", "unknown" if lag is None else f"{lag} bytes"),
    ]
    if "database" in report:
        db = report["database"]
        rows.append(
            ("leader before -> now", f"{db['old_leader']} -> {', '.join(db['leader_now']) or 'none'}")
        )
        rows.append(("old leader now", f"{db['old_leader_role']} ({db['old_leader_state']})"))
    if "patroni" in report:
        pat = report["patroni"]
        rows.append(
            (
                "Patroni: leader, timeline, sync",
                f"{','.join(pat['leader_before'])} -> {','.join(pat['leader_after']) or 'none'}, "
                f"{pat['timeline_before']} -> {pat['timeline_after']}, "
                f"{','.join(pat['sync_standby_before']) or 'none'} -> "
                f"{','.join(pat['sync_standby_after']) or 'none'}",
            )
        )
    rows += _tunnel_rows(report.get("tunnels"))
    if report.get("alerts") is not None:
        fired = [
            f"{a['alertname']} {a['after_fault']:+.1f} s"
            + ("" if a.get("resolved_at") is not None else " (firing)")
            for a in report["alerts"]
            if "after_fault" in a
        ]
        rows.append(("alerts (delay after the fault)", ", ".join(fired) or "none"))
        waited = (report.get("monitoring") or {}).get("waited_for_resolution_seconds")
        if waited is not None:
            rows.append(("waited for their resolution", f"{waited:g} s"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines += [f"[{'PASS' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}" for c in report["checks"]]
    return "\n".join(lines)


def _gap_row(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    gap = report.get("write_gap")
    if not gap:
        return []
    kinds = ", ".join(f"{k}={v}" for k, v in gap["failed_by_kind"].items())
    return [
        (
            "longest write gap",
            f"{gap['seconds']:.2f} s (t={gap['from']:.1f}-{gap['to']:.1f} s; "
            f"{gap['failed_attempts']} failed attempts{': ' + kinds if kinds else ''})",
        )
    ]


def _tunnel_rows(tunnels: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Which tunnel carried the traffic in each window (bytes in at the gateway), and when they moved."""
    if not tunnels:
        return []

    def secs(v: float | None) -> str:
        return "-" if v is None else f"+{v:.1f} s"

    rows = []
    for window in ("before", "during", "after"):
        w = tunnels["windows"][window]
        names = [k for k in w if not k.startswith("carrier")]
        rows.append(
            (
                f"tunnels {window} the fault" if window != "after" else "tunnels after the restore",
                f"sent by {w['carrier_out'] or 'none'}, received by {w['carrier_in'] or 'none'} ("
                + ", ".join(f"{n} {w[n]['bytes_out']:,} B out / {w[n]['bytes_in']:,} B in" for n in names)
                + ")",
            )
        )
    names = list(tunnels["down_after_fault"])
    rows.append(
        (
            "tunnel down after the fault",
            ", ".join(f"{n} {secs(tunnels['down_after_fault'][n])}" for n in names),
        )
    )
    rows.append(
        (
            "tunnel up after the restore",
            ", ".join(f"{n} {secs(tunnels['up_after_restore'][n])}" for n in names),
        )
    )
    return rows
