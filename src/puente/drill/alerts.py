"""The alerts a drill proves (issue 12, item 3): what each site's Alertmanager notified during the drill,
read from the lab's recording receiver on every monitoring node (role monitoring:
``monitoring_lab_receiver_log``, one JSON line per alert per notification), placed on the drill's clock,
and judged against what the fault must raise — e.g. "site down" and "leader changed" within 30 s of a site
cut, and both resolved once the site is back.

The receivers are read once the fault is lifted (``podman exec``, so a cut network does not matter): the
surviving site's saw the fault, the other one's what its own Prometheus saw once it could again. The drill
then waits, bounded, for the expected alerts' resolved notifications, and reports how long that took.
Pure functions apart from :func:`read_receiver`; tests/drill/test_alerts.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from puente.drill import cluster, timeline
from puente.shell import CommandError

# role monitoring's default monitoring_lab_receiver_log (the lab keeps it)
RECEIVER_LOG = "/var/log/puente-alerts/alerts.jsonl"
# issue 12: "site down and leader changed within 30 s of the cut"
FIRE_WITHIN = 30.0
# the bounded wait for resolved notifications, after the drill's own end
RESOLVE_TIMEOUT = 120.0
POLL_SECONDS = 2.0
# the receiver's log only grows: the drill reads its end (a drill's notifications are a few dozen lines)
TAIL_LINES = 5000


@dataclass(frozen=True)
class Expect:
    """An alert the fault must raise (``fires``) or must not (``fires=False``)."""

    alertname: str
    labels: Mapping[str, str] = field(default_factory=dict)
    within: float = FIRE_WITHIN
    """Seconds after the fault by which it must have fired (Prometheus's FiredAt, Alertmanager's startsAt)."""
    fires: bool = True
    resolves_after_restore: bool = False
    """Its condition lasts as long as the fault (a site down): resolving before the fault is lifted is a
    failure too. An event alert (the leader changed) resolves on its own clock."""

    def matches(self, alert: Mapping[str, Any]) -> bool:
        labels = alert.get("labels") or {}
        return alert.get("alertname") == self.alertname and all(
            labels.get(k) == v for k, v in self.labels.items()
        )

    def __str__(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.alertname}{{{inner}}}" if inner else self.alertname


def parse_records(text: str) -> list[dict[str, Any]]:
    """The receiver's JSON lines; anything else (podman's warnings, a line cut by ``tail``) is skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def read_receiver(node: str, path: str = RECEIVER_LOG) -> list[dict[str, Any]]:
    """The last TAIL_LINES records of ``node``'s receiver log (none yet: the file does not exist)."""
    out = cluster._exec(node, ["sh", "-c", f'test ! -e "$1" || tail -n {TAIL_LINES} "$1"', "sh", path])
    return parse_records(out)


def on_the_drills_clock(
    records: Iterable[Mapping[str, Any]], t0_unix: float, fault_at: float
) -> list[dict[str, Any]]:
    """Receiver records -> the report's ``alerts`` (timeline.alerts_from_webhook's items) for every alert
    that fired after the drill started (t >= 0), each with ``after_fault``: its delay after the fault."""
    rows = []
    for r in records:
        got = timeline.rfc3339_to_unix(str(r.get("received_at") or ""))
        if got is not None and got >= t0_unix:
            rows.append((got, r))
    rows.sort(key=lambda row: row[0])
    payloads = [
        {
            "alerts": [
                {
                    "status": r.get("status"),
                    "labels": r.get("labels") or {},
                    "annotations": r.get("annotations") or {},
                    "startsAt": r.get("starts_at") or "",
                    "endsAt": r.get("ends_at") or "",
                }
            ]
        }
        for _, r in rows
    ]
    items = timeline.alerts_from_webhook(payloads, t0_unix, [got for got, _ in rows])
    out = [a for a in items if a["fired_at"] is not None and a["fired_at"] >= 0]
    for a in out:
        a["after_fault"] = round(a["fired_at"] - fault_at, 3)
    return out


def _fired(alerts: Sequence[Mapping[str, Any]], exp: Expect, fault_at: float) -> list[Mapping[str, Any]]:
    return sorted(
        (a for a in alerts if exp.matches(a) and a["fired_at"] >= fault_at), key=lambda a: a["fired_at"]
    )


def unresolved(alerts: Sequence[Mapping[str, Any]], expects: Iterable[Expect], fault_at: float) -> list[str]:
    """Expected alerts that fired after the fault and have no resolved notification yet."""
    return [
        f"{a['alertname']} {timeline_labels(a)}".rstrip()
        for exp in expects
        if exp.fires
        for a in _fired(alerts, exp, fault_at)
        if a.get("resolved_at") is None
    ]


def timeline_labels(a: Mapping[str, Any]) -> str:
    skip = {"alertname", "severity"}
    return ",".join(f"{k}={v}" for k, v in sorted((a.get("labels") or {}).items()) if k not in skip)


def judge(
    alerts: Sequence[Mapping[str, Any]], expects: Iterable[Expect], fault_at: float, restore_at: float
) -> list[dict[str, Any]]:
    """The report's checks for ``expects``: each expected alert fired within its delay after the fault
    (every Prometheus that fired it counted; the first one judged) and every firing of it resolved
    (after the restore when its condition is the fault itself); each forbidden one never fired."""
    checks: list[dict[str, Any]] = []
    for exp in expects:
        fired = _fired(alerts, exp, fault_at)
        if not exp.fires:
            checks.append(
                {
                    "name": f"alert_silent:{exp.alertname}",
                    "ok": not fired,
                    "detail": f"{exp} must not fire: "
                    + (
                        "it did not"
                        if not fired
                        else "fired " + ", ".join(f"{a['after_fault']:.1f} s after the fault" for a in fired)
                    ),
                }
            )
            continue
        first = fired[0] if fired else None
        if first is None:
            detail = f"{exp} never fired after the fault (limit {exp.within:g} s)"
        else:
            seen = f" ({timeline_labels(first)})" if timeline_labels(first) else ""
            delay = first["after_fault"]
            detail = f"{exp} fired {delay:.1f} s after the fault{seen} (limit {exp.within:g} s)"
        checks.append(
            {
                "name": f"alert_fired:{exp.alertname}",
                "ok": first is not None and first["after_fault"] <= exp.within,
                "detail": detail,
            }
        )
        if not fired:
            continue
        problems = []
        resolved_after = []
        for a in fired:
            end = a.get("resolved_at")
            if end is None:
                problems.append(f"{timeline_labels(a) or exp.alertname} still firing")
            elif exp.resolves_after_restore and end < restore_at:
                problems.append(f"{timeline_labels(a)} resolved {restore_at - end:.1f} s BEFORE the restore")
            else:
                resolved_after.append(end - restore_at)
        detail = (
            f"{exp}: resolved {max(resolved_after):.1f} s after the restore"
            if not problems
            else f"{exp}: " + "; ".join(problems)
        )
        checks.append({"name": f"alert_resolved:{exp.alertname}", "ok": not problems, "detail": detail})
    return checks


Reader = Callable[[str], list[dict[str, Any]]]


def collect(
    nodes: Sequence[str],
    expects: Sequence[Expect],
    *,
    t0_unix: float,
    fault_at: float,
    restore_at: float,
    timeout: float = RESOLVE_TIMEOUT,
    reader: Reader = read_receiver,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Read every receiver until each expected alert that fired has resolved, or ``timeout`` seconds.
    Returns ``alerts`` (the report's key), ``checks`` and ``monitoring`` (receivers, errors, the wait)."""
    started = clock()
    waiting_for: list[str] = []
    while True:
        records: list[dict[str, Any]] = []
        errors: dict[str, str] = {}
        for node in nodes:
            try:
                records += reader(node)
            except (CommandError, OSError) as exc:
                errors[node] = (str(exc).splitlines() or [type(exc).__name__])[0]
        alerts = on_the_drills_clock(records, t0_unix, fault_at)
        waiting_for = unresolved(alerts, expects, fault_at)
        if not waiting_for or clock() - started >= timeout:
            break
        if not errors and clock() - started < POLL_SECONDS:
            say(f"waiting up to {timeout:g} s for the resolution of {', '.join(waiting_for)}")
        sleep(POLL_SECONDS)
    waited = round(clock() - started, 1)
    checks = judge(alerts, expects, fault_at, restore_at)
    if errors:
        checks.append(
            {
                "name": "alert_receivers_read",
                "ok": False,
                "detail": "; ".join(f"{n}: {e}" for n, e in sorted(errors.items())),
            }
        )
    return {
        "alerts": alerts,
        "checks": checks,
        "monitoring": {
            "receivers": list(nodes),
            "receiver_log": RECEIVER_LOG,
            "read_errors": errors,
            "waited_for_resolution_seconds": waited,
            "timeout_seconds": timeout,
            "still_firing": waiting_for,
        },
    }
