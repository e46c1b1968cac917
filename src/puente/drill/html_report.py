"""report.html: a drill for people — one self-contained page beside report.json.

The verdict and the figures first, then the timeline (``chart``: inline SVG, fault window marked), the
alerts with their delay after the fault, and the checks. No script, font, image or style is fetched
from anywhere: the page's Content-Security-Policy forbids it. A report written before the drill
recorded ``series`` is completed from its attempts.jsonl (:func:`backfill`, ``puente drill html DIR``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from puente.drill import chart, timeline
from puente.drill.attempts import load_jsonl
from puente.drill.chart import el

HTML_NAME = "report.html"

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>$title</title>
<style>
:root { --line: #d5d7db; --pass: #1e7b34; --fail: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 80rem; padding: 1rem; color: #1f1f1f; overflow-wrap: anywhere;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.45rem; margin: .2rem 0; }
h2 { font-size: 1.15rem; margin: 1.4rem 0 .5rem; border-bottom: 2px solid var(--line); }
.meta { color: #444; font-size: .9rem; }
.badge { display: inline-block; padding: 0 .6rem; border-radius: .6rem; font-size: .9rem; font-weight: 600;
  color: #fff; vertical-align: middle; white-space: nowrap; }
td:first-child, th:first-child { overflow-wrap: normal; }
.pass { background: var(--pass); } .fail { background: var(--fail); }
.cards { display: flex; flex-wrap: wrap; gap: .5rem; margin: .6rem 0; }
.card { flex: 1 1 9rem; border: 1px solid var(--line); border-top: 4px solid #5f6368; padding: .3rem .6rem; }
.card b { display: block; font-size: 1.3rem; }
.card.bad { border-top-color: var(--fail); } .card.good { border-top-color: var(--pass); }
table { width: 100%; border-collapse: collapse; margin: .4rem 0; }
th, td { text-align: left; vertical-align: top; padding: .25rem .4rem; border-bottom: 1px solid var(--line); }
th { background: #f4f5f7; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: .2rem 1rem; font-size: .85rem; margin: .3rem 0; padding: 0;
  list-style: none; }
.legend i { display: inline-block; width: .9rem; height: .9rem; margin-right: .3rem; vertical-align: -.1rem; }
figure { margin: 0; overflow-x: auto; }
svg { width: 100%; min-width: 760px; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #333; }
svg .tick { font-size: 11px; fill: #555; }
svg .panel-name, svg .lane-name { font-weight: 600; }
svg .alert-name { font-size: 11px; }
svg .note { fill: #555; font-style: italic; }
svg .on-colour { fill: #fff; font-size: 11px; }
svg .grid { stroke: #e3e5e8; } svg .vgrid { stroke: #eef0f2; }
svg .empty { fill: #f6f7f9; stroke: var(--line); }
svg .latency polyline { fill: none; stroke-width: 1.6; }
svg .fault-edge { stroke: #c62828; stroke-dasharray: 4 3; }
svg .fault-label { fill: #b3261e; font-weight: 600; }
svg .open { stroke: #000; stroke-dasharray: 3 2; }
</style>
</head>
<body>
<header>
<h1>Drill $scenario <span id="verdict" class="badge $verdict_class">$verdict</span></h1>
<p class="meta">$meta</p>
</header>
<main>
<section id="summary"><div class="cards">$cards</div></section>
<section id="timeline-section"><h2>Timeline</h2>
<ul class="legend">$legend</ul>
<figure>$svg</figure>
<p class="meta">$how</p>
</section>
<section id="alerts"><h2>Alerts</h2>$alerts</section>
<section id="checks"><h2>Checks</h2>$checks</section>
</main>
</body>
</html>
""")


def _secs(v: Any) -> str:
    return "never" if v is None else f"{float(v):.2f} s"


def _cards(report: Mapping[str, Any]) -> str:
    writes, dups = report["writes"], report["duplicate_effects"]["total"]
    lost = writes["lost"] + writes["unverified"]
    cards = [
        ("RTO reads", _secs(report["rto"]["read"]["seconds"]), None),
        ("RTO writes", _secs(report["rto"]["write"]["seconds"]), None),
        ("writes acknowledged", str(writes["acknowledged"]), None),
        ("lost (+unverified)", f"{writes['lost']} (+{writes['unverified']})", "bad" if lost else "good"),
        ("duplicate effects", str(dups), "bad" if dups else "good"),
    ]
    db = report.get("database")
    if db:
        cards.append(
            ("leader before → after", f"{db['old_leader']} → {', '.join(db['leader_now']) or 'none'}", None)
        )
    if report.get("alerts") is not None:
        cards.append(("alerts fired", str(len(report["alerts"])), None))
    return "".join(
        el("div", el("b", escape(value)) + escape(name), class_=f"card {cls or ''}".strip())
        for name, value, cls in cards
    )


def _checks(report: Mapping[str, Any]) -> str:
    rows = "".join(
        el(
            "tr",
            el(
                "td",
                el("span", "PASS" if c["ok"] else "FAIL", class_=f"badge {'pass' if c['ok'] else 'fail'}"),
            )
            + el("td", escape(str(c["name"])))
            + el("td", escape(str(c["detail"]))),
        )
        for c in report["checks"]
    )
    head = el("tr", "".join(el("th", h) for h in ("verdict", "check", "detail")))
    return el("table", el("thead", head) + el("tbody", rows))


def _alerts(report: Mapping[str, Any]) -> str:
    alerts = report.get("alerts")
    if alerts is None:
        return el("p", "This report carries no alerts: the drill ran without monitoring.", class_="meta")
    if not alerts:
        return el("p", "No alert fired during the drill.")
    fault_at = float(report["timeline"]["fault_at"])

    def after(v: float | None) -> str:
        return "" if v is None else f"{v - fault_at:+.1f} s"

    rows = "".join(
        el(
            "tr",
            "".join(
                el("td", escape(v))
                for v in (
                    str(a.get("alertname")),
                    str(a.get("severity") or ""),
                    chart.alert_labels(a),
                    after(a.get("fired_at")),
                    after(a.get("notified_at")),
                    "still firing" if a.get("resolved_at") is None else after(a["resolved_at"]),
                )
            ),
        )
        for a in alerts
    )
    heads = ("alert", "severity", "labels", "fired", "notified", "resolved")
    head = el("tr", "".join(el("th", h) for h in heads))
    caption = el("caption", "times after the fault (negative: before it)", class_="meta")
    return el("table", caption + el("thead", head) + el("tbody", rows))


def _started(report: Mapping[str, Any]) -> str:
    t0 = report["timeline"].get("t0_unix")
    return "" if t0 is None else datetime.fromtimestamp(float(t0), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(report: Mapping[str, Any]) -> str:
    """The whole page, from a report that has ``series`` (see :func:`backfill` for older ones)."""
    tl = report["timeline"]
    started = _started(report)
    verdict = "PASS" if report.get("passed") else "FAIL"
    meta = [
        f"started {started}" if started else "",
        f"client {report['client_id']}" if report.get("client_id") else "",
        f"name {report['api_name']}" if report.get("api_name") else "",
        f"fault at t={tl['fault_at']:.1f} s, lifted at t={tl['restore_at']:.1f} s, "
        f"load stopped at t={tl['ended_at']:.1f} s",
    ]
    dns_source = (report["series"].get("dns") or {}).get("source")
    how = (
        "Requests and failed attempts are counted by the second each attempt started (a retry is an "
        "attempt); latency is each attempt's duration, timeouts included. "
        + (
            "DNS: the failover DNS asked once a second. "
            if dns_source == "server"
            else "DNS: the addresses the client connected to (the report predates sampling the DNS). "
        )
        + "DB leader: the member(s) answering 200 on Patroni's /primary, asked once a second."
    )
    return _PAGE.substitute(
        title=escape(
            f"Puente drill {report.get('scenario')} — {verdict}" + (f" — {started}" if started else "")
        ),
        scenario=escape(str(report.get("scenario"))),
        verdict=verdict,
        verdict_class=verdict.lower(),
        meta=escape(" · ".join(m for m in meta if m)),
        cards=_cards(report),
        legend="".join(
            el("li", el("i", style=f"background: {c}") + escape(t)) for c, t in chart.legend(report)
        ),
        svg=chart.svg(report),
        how=escape(how),
        alerts=_alerts(report),
        checks=_checks(report),
    )


def backfill(report: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """A report written before the drill recorded ``series``: rebuilt from its attempts.jsonl, the DNS
    lane from the addresses the client used, no leader samples (the page says so)."""
    if "series" in report:
        return report
    attempts = load_jsonl(out_dir / "attempts.jsonl")
    report["series"] = timeline.series(
        attempts,
        ended_at=float(report["timeline"]["ended_at"]),
        dns=timeline.client_dns(attempts),
        dns_source="client",
    )
    return report


def write(out_dir: Path, report: Mapping[str, Any]) -> Path:
    path = out_dir / HTML_NAME
    path.write_text(render(report), encoding="utf-8")
    return path


def render_dir(out_dir: Path) -> Path:
    """(Re)write report.html of a drill's output directory from its report.json."""
    report = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    return write(out_dir, backfill(report, out_dir))
