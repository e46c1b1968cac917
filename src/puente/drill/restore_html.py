"""report.html of a restore drill: the verdict, the figures and the checks on one self-contained page
(no script, font or image fetched; the page's Content-Security-Policy forbids it), beside report.json."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from puente.drill.chart import el
from puente.drill.html_report import HTML_NAME

_STYLE = """body { margin: 0 auto; max-width: 60rem; padding: 1rem; font: 15px/1.45 system-ui, sans-serif; }
table { width: 100%; border-collapse: collapse; margin: .4rem 0; }
th, td { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid #d5d7db; }
th { background: #f4f5f7; }
.pass { color: #1e7b34; font-weight: 600; } .fail { color: #b3261e; font-weight: 600; }"""


def _fmt(value: Any) -> str:
    return "—" if value is None else str(value)


def render(report: Mapping[str, Any]) -> str:
    verdict = "PASS" if report.get("passed") else "FAIL"
    f, rows = report["figures"], report["rows"]
    when = report.get("target_time", report.get("loss_at"))
    figures = [
        ("target" if report["mode"] == "time" else "loss at", when),
        ("pgbackrest restore", f"{f['restore_seconds']} s"),
        ("WAL replay and promotion", f"{f['recovery_seconds']} s"),
        ("size restored", f"{f['size_bytes'] / 1e6:.1f} MB ({_fmt(f.get('mb_per_s'))} MB/s)"),
        ("WAL replayed", f"{_fmt(f.get('wal_replayed_bytes'))} bytes"),
        ("recovery point before the target", f"{_fmt(f.get('recovery_point_before_target_seconds'))} s"),
        ("acknowledged before / missing / changed",
         f"{rows['acknowledged_before_t']} / {rows['missing']} / {rows['changed']}"),
        ("written after T / restored anyway", f"{rows['written_after_t']} / {rows['present_after_t']}"),
        ("in flight at T (not judged)", rows["in_flight_at_t"]),
    ]  # fmt: skip
    if "plain" in f:
        figures.append(("plain restore of the same backup", f"{f['plain']['restore_seconds']} s "
                        f"({_fmt(f['plain'].get('mb_per_s'))} MB/s)"))  # fmt: skip
    if "lost_window_seconds" in f:
        figures.append(("acknowledged writes lost, span before the loss", f"{f['lost_window_seconds']} s"))
    table = el(
        "table", "".join(el("tr", el("th", escape(k)) + el("td", escape(_fmt(v)))) for k, v in figures)
    )
    checks = el(
        "table",
        "".join(
            el(
                "tr",
                el("td", "PASS" if c["ok"] else "FAIL", class_="pass" if c["ok"] else "fail")
                + el("td", escape(str(c["name"])))
                + el("td", escape(str(c["detail"]))),
            )
            for c in report["checks"]
        ),
    )
    head = (
        '<meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        + el("title", escape(f"Puente drill {report.get('scenario')} — {verdict}"))
        + el("style", _STYLE)
    )
    body = (
        el(
            "h1",
            escape(f"Puente drill {report.get('scenario')} ") + el("span", verdict, class_=verdict.lower()),
        )
        + el(
            "p",
            escape(
                f"leader {report.get('leader')}, restored on {report.get('restore_node')}, "
                f"client {report.get('client_id')}"
            ),
        )
        + el("h2", "Figures")
        + table
        + el("h2", "Checks")
        + checks
    )
    return "<!DOCTYPE html>\n" + el("html", el("head", head) + el("body", body), lang="en") + "\n"


def write(out_dir: Path, report: Mapping[str, Any]) -> Path:
    path = out_dir / HTML_NAME
    path.write_text(render(report), encoding="utf-8")
    return path
