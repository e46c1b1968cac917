"""A drill second by second, for the HTML page (``html_report``): what the client saw each second
(requests answered by each site, failed attempts by kind, p50 and p99 latency), where DNS pointed, which
member led, and the alerts — all on the drill's clock (seconds since the load started).

Pure functions: attempts and samples in, JSON-ready dicts out; the report's ``series`` key is
:func:`series`, its ``alerts`` key is :func:`alerts_from_webhook` (tests/drill/test_timeline.py).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from puente.drill.attempts import READ, WRITE, Attempt

BUCKET_SECONDS = 1.0
FAILED = "failed"
UNKNOWN_SITE = "?"


@dataclass(frozen=True)
class DnsSample:
    """One answer to the API's name, asked of the failover DNS itself (``source`` "server"), or the
    addresses the client connected to in one bucket (``source`` "client", rebuilt from attempts)."""

    t: float
    addresses: tuple[str, ...] = ()
    error: str | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _buckets(attempts: Sequence[Attempt], ended_at: float, bucket: float) -> int:
    last = max((a.started for a in attempts), default=0.0)
    return max(1, math.ceil(max(ended_at, last + 1e-9) / bucket))


def series(
    attempts: Iterable[Attempt],
    *,
    ended_at: float,
    dns: Sequence[DnsSample] = (),
    dns_source: str = "server",
    leaders: Sequence[tuple[float, Sequence[str]]] | None = None,
    site_of_address: Mapping[str, str] | None = None,
    site_of_member: Mapping[str, str] | None = None,
    bucket: float = BUCKET_SECONDS,
) -> dict[str, Any]:
    """Per-bucket figures of the load (reads and writes; the read-back after the drill is left out),
    bucketed by each attempt's start, and the DNS and leader samples with the site each one names.

    ``leaders``: (t, members answering 200 on Patroni's /primary) per sampling round; None when the
    drill did not sample (the page then says so instead of drawing an empty lane)."""
    load = sorted((a for a in attempts if a.op in (READ, WRITE)), key=lambda a: a.started)
    n = _buckets(load, ended_at, bucket)
    answered: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    errors: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    latencies: list[list[float]] = [[] for _ in range(n)]
    sites = dict(site_of_address or {})
    for a in load:
        i = min(int(a.started // bucket), n - 1) if a.started >= 0 else 0
        if a.ok:
            answered[a.site or UNKNOWN_SITE][i] += 1
        else:
            answered[FAILED][i] += 1
            errors[a.error or "unknown"][i] += 1
        latencies[i].append((a.ended - a.started) * 1000)
        if a.address and a.site and a.address not in sites:
            sites[a.address] = a.site
    rate = 1 / bucket
    requests = {k: [round(c * rate, 3) for c in v] for k, v in answered.items() if k != FAILED}
    requests = dict(sorted(requests.items()))
    requests[FAILED] = [round(c * rate, 3) for c in answered[FAILED]]
    out: dict[str, Any] = {
        "bucket_seconds": bucket,
        "t": [round(i * bucket, 3) for i in range(n)],
        "requests_per_second": requests,
        "errors": dict(sorted(errors.items())),
        "latency_ms": {
            q: [round(percentile(v, p), 1) if v else None for v in latencies]
            for q, p in (("p50", 50), ("p99", 99))
        },
        "dns": {
            "source": dns_source,
            "samples": [
                {
                    "t": round(s.t, 3),
                    "addresses": list(s.addresses),
                    "sites": sorted({sites.get(x, UNKNOWN_SITE) for x in s.addresses}),
                    "error": s.error,
                }
                for s in dns
            ],
        },
        "leader": None,
    }
    if leaders is not None:
        members = site_of_member or {}
        out["leader"] = {
            "samples": [
                {
                    "t": round(t, 3),
                    "leaders": sorted(names),
                    "sites": sorted({members.get(x, UNKNOWN_SITE) for x in names}),
                }
                for t, names in leaders
            ]
        }
    return out


def client_dns(attempts: Iterable[Attempt], bucket: float = BUCKET_SECONDS) -> list[DnsSample]:
    """Where DNS pointed as the client used it: the addresses its attempts connected to, per bucket.
    For reports written before the drill asked the DNS server itself every second."""
    used: dict[int, Counter[str]] = defaultdict(Counter)
    for a in attempts:
        if a.op in (READ, WRITE) and a.address:
            used[int(max(a.started, 0) // bucket)][a.address] += 1
    return [DnsSample(i * bucket, tuple(sorted(used[i]))) for i in sorted(used)]


# -- alerts ---------------------------------------------------------------------------------------------
# The report's ``alerts`` key: a list, one item per alert instance (alertname + labels), ordered by when
# it fired:
#   {"alertname": str, "severity": str | None, "labels": {str: str}, "summary": str | None,
#    "fired_at": float, "resolved_at": float | None, "notified_at": float | None}
# times in drill seconds (``timeline.t0_unix`` is the wall clock of t = 0); "fired_at" is Alertmanager's
# startsAt, "resolved_at" its endsAt once resolved (None while still firing), "notified_at" when the
# receiver first got it firing (None if the receiver does not record it). A report without the key was
# written without monitoring; an empty list means nothing fired.


def rfc3339_to_unix(stamp: str) -> float | None:
    """RFC 3339 (Alertmanager's startsAt/endsAt, nanoseconds allowed) -> Unix seconds; None for the zero
    time Alertmanager sends as the endsAt of a firing alert."""
    if not stamp or stamp.startswith("0001-"):
        return None
    text = stamp.replace("Z", "+00:00")
    head, _, tail = text.partition(".")
    if tail:  # Python before 3.11 and Go's nanoseconds: keep microseconds
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text).timestamp()


def alerts_from_webhook(
    notifications: Iterable[Mapping[str, Any]], t0_unix: float, received_unix: Sequence[float] | None = None
) -> list[dict[str, Any]]:
    """Alertmanager webhook payloads (version 4: ``{"alerts": [{"status", "labels", "annotations",
    "startsAt", "endsAt", ...}]}``), in the order received, -> the report's ``alerts`` list.
    ``received_unix``: when each payload arrived (same order), for ``notified_at``."""
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for n, payload in enumerate(notifications):
        got = received_unix[n] if received_unix is not None and n < len(received_unix) else None
        for alert in payload.get("alerts") or []:
            labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
            starts = rfc3339_to_unix(str(alert.get("startsAt") or ""))
            # a resolved notification repeats the firing one's startsAt; a new firing has a new one
            key = (*sorted(labels.items()), starts)
            item = by_key.setdefault(
                key,
                {
                    "alertname": labels.get("alertname", "?"),
                    "severity": labels.get("severity"),
                    "labels": labels,
                    "summary": (alert.get("annotations") or {}).get("summary"),
                    "fired_at": None if starts is None else round(starts - t0_unix, 3),
                    "resolved_at": None,
                    "notified_at": None,
                },
            )
            if alert.get("status") == "resolved":
                ends = rfc3339_to_unix(str(alert.get("endsAt") or ""))
                item["resolved_at"] = None if ends is None else round(ends - t0_unix, 3)
            elif got is not None and item["notified_at"] is None:
                item["notified_at"] = round(got - t0_unix, 3)
    return sorted(by_key.values(), key=lambda a: (a["fired_at"] is None, a["fired_at"] or 0, a["alertname"]))
