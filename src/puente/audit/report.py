"""The audit report as data (report.json), the source of the HTML form.

Schema ``puente-audit/1``: ``run`` (when, how long, git revision, tool versions, inventory, command),
``summary`` (counts by status, per host, per control), ``hosts``, ``controls``, ``results`` (one per control
per host, with evidence), ``waivers`` and ``drift``. JUnit XML is written by pytest itself (--junitxml).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from puente.audit.catalogue import SEVERITIES
from puente.audit.inventory import Inventory
from puente.audit.waivers import Waiver
from puente.shell import ROOT

SCHEMA = "puente-audit/1"
STATUSES = ("failed", "error", "waived", "passed", "skipped", "n/a")
# Tools whose version changes what a control sees or how it is judged.
_TOOLS = ("puente", "pytest", "pytest-testinfra", "pytest-xdist", "ansible-core", "jinja2")
JSON_NAME, HTML_NAME, JUNIT_NAME = "report.json", "report.html", "junit.xml"


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision(root: Path = ROOT) -> dict[str, Any]:
    """The revision the controls come from; ``dirty`` when the work tree differs from it."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    revision = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "audit", "src/puente/audit")) if revision else None
    return {"revision": revision or "unknown", "dirty": dirty}


def build(
    *,
    results: list[dict[str, Any]],
    inventory: Inventory | None,
    hosts: list[str] | None = None,
    waivers: list[Waiver],
    started: dt.datetime,
    duration: float,
    today: dt.date,
    connection: str,
    command: list[str],
    workers: int,
    drift: dict[str, Any] | None,
    exitstatus: int = 0,
) -> dict[str, Any]:
    controls: dict[str, dict[str, Any]] = {}
    for r in results:
        controls.setdefault(r["control"]["id"], r["control"])
    slim = []
    for r in sorted(results, key=lambda r: (r["control"]["id"], r["host"], r["params"])):
        item = {k: v for k, v in r.items() if k not in ("control", "when")}
        item["control_id"] = r["control"]["id"]
        item["severity"] = r["control"]["severity"]
        slim.append(item)
    if hosts is None:
        hosts = inventory.hosts if inventory else sorted({r["host"] for r in slim if r["host"]})
    host_rows = []
    for h in hosts:
        mine = [r for r in slim if r["host"] == h]
        host_rows.append(
            {
                "host": h,
                "site": inventory.site_of(h) if inventory else "",
                "groups": [g for g in (inventory.groups_of[h] if inventory else [])],
                "counts": _counts(mine),
                "status": _worst(mine),
            }
        )
    control_rows: list[dict[str, Any]] = []
    for cid in controls:
        mine = [r for r in slim if r["control_id"] == cid]
        control_rows.append(
            {
                "id": cid,
                "counts": _counts(mine),
                "status": _worst(mine),
                "failed_hosts": sorted({r["host"] for r in mine if r["status"] in ("failed", "error")}),
            }
        )

    # What needs attention first: failures, then by severity.
    def attention(row: dict[str, Any]) -> tuple[int, int, str]:
        return (STATUSES.index(row["status"]), SEVERITIES.index(controls[row["id"]]["severity"]), row["id"])

    control_rows.sort(key=attention)
    return {
        "schema": SCHEMA,
        "run": {
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "duration_seconds": round(duration, 1),
            "waivers_judged_on": today.isoformat(),
            "git": git_revision(),
            "tools": tool_versions(),
            "inventory": inventory.path if inventory else None,
            "connection": connection,
            "workers": workers,
            "command": command,
        },
        "summary": {
            "status": _verdict(slim, exitstatus),
            "counts": _counts(slim),
            "controls": len(controls),
            "hosts": host_rows,
            "by_control": control_rows,
        },
        "controls": [controls[c] for c in sorted(controls)],
        "results": slim,
        "waivers": [{**w.to_dict(), "active": w.active(today)} for w in waivers],
        "drift": drift,
    }


def _verdict(results: list[dict[str, Any]], exitstatus: int) -> str:
    """pass only when every result passed or was waived AND pytest itself finished normally."""
    if any(r["status"] in ("failed", "error") for r in results):
        return "fail"
    if exitstatus not in (0, 1) or not any(r["status"] != "n/a" for r in results):
        return "incomplete"  # collection error, interrupted run, or nothing assessed
    return "pass"


def _counts(results: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(r["status"] for r in results)
    return {s: counts.get(s, 0) for s in STATUSES}


def _worst(results: list[dict[str, Any]]) -> str:
    present = {r["status"] for r in results}
    return next((s for s in STATUSES if s in present), "n/a")


def summary_line(doc: dict[str, Any]) -> str:
    counts = doc["summary"]["counts"]
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    line = (
        f"audit {doc['summary']['status'].upper()}: {doc['summary']['controls']} controls on "
        f"{len(doc['summary']['hosts'])} hosts: {parts or 'no results'} "
        f"in {doc['run']['duration_seconds']} s"
    )
    if doc.get("drift"):
        line += f"; {doc['drift']['summary']}"
    return line


def write(out: Path, doc: dict[str, Any]) -> None:
    from puente.audit.html import render

    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_NAME).write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    (out / HTML_NAME).write_text(render(doc))


def load(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / JSON_NAME).read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{out / JSON_NAME}: schema {doc.get('schema')!r}, expected {SCHEMA}")
    return doc
