"""The drill's timeline as one inline SVG, drawn from the report's ``series`` and ``alerts`` keys
(``timeline``): requests per second by the site that answered, failed attempts by kind, p50 and p99
latency, where DNS pointed, which member led, the alerts — and the fault window across all of them.

No script and no font: hovering a mark shows its figures (SVG ``<title>``). Marks carry ``data-*``
attributes (series, time, value) so a browser test can check what was drawn where.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from puente.drill import timeline

WIDTH = 1000
X0, X1 = 150, 985
"""The plot's left and right edges (SVG units): the left margin holds the panel and lane names."""
TOP, GAP = 30, 26
"""Room above the first panel for the fault window's labels; space between panels."""
CHART_H, ERRORS_H, LANE_H, ALERT_H = 130, 90, 30, 22

SITE_COLOURS = {"onprem": "#2b6cb0", "cloud": "#0f8b6d", "witness": "#7a5cc7"}
OTHER_COLOURS = ("#8a6d3b", "#5c6bc0", "#00838f", "#6d4c41")
ERROR_COLOURS = ("#e65100", "#b71c1c", "#6a1b9a", "#ad1457", "#4e342e", "#f9a825", "#283593", "#37474f")
# Puente's severities (roles/monitoring/files/rules: page, ticket, info) and the common ones
SEVERITY_COLOURS = {
    "page": "#b71c1c",
    "critical": "#b71c1c",
    "ticket": "#e65100",
    "warning": "#e65100",
    "info": "#1565c0",
}
FAILED_COLOUR, NONE_COLOUR, MIXED_COLOUR = "#c62828", "#9e9e9e", "#795548"
P50_COLOUR, P99_COLOUR = "#1565c0", "#c2185b"
FAULT_FILL = "rgba(198, 40, 40, .09)"


def el(tag: str, body: str = "", **attrs: Any) -> str:
    """One element; ``class_`` -> class, ``data_t`` -> data-t, ``text_anchor`` -> text-anchor; None
    values are left out; attribute values are escaped, ``body`` is not (escape text yourself)."""
    a = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for k, v in attrs.items() if v is not None
    )
    return f"<{tag}{a}>{body}</{tag}>"


def num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def site_colour(site: str, order: Sequence[str] = ()) -> str:
    if site in SITE_COLOURS:
        return SITE_COLOURS[site]
    if site == timeline.FAILED:
        return FAILED_COLOUR
    others = [s for s in order if s not in SITE_COLOURS and s != timeline.FAILED]
    return OTHER_COLOURS[others.index(site) % len(OTHER_COLOURS)] if site in others else NONE_COLOUR


def error_colours(kinds: Sequence[str]) -> dict[str, str]:
    return {k: ERROR_COLOURS[i % len(ERROR_COLOURS)] for i, k in enumerate(kinds)}


def error_label(kind: str) -> str:
    return f"HTTP {kind[5:]}" if kind.startswith("http_") else kind.replace("_", " ")


def request_label(key: str) -> str:
    return "failed attempt" if key == timeline.FAILED else f"answered by {key}"


def legend(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(colour, meaning) of everything the chart draws, for the page's legend."""
    series = report["series"]
    order = list(series["requests_per_second"])
    items = [(site_colour(k, order), request_label(k)) for k in order]
    items += [(c, error_label(k)) for k, c in error_colours(list(series["errors"])).items()]
    items += [(P50_COLOUR, "p50 latency"), (P99_COLOUR, "p99 latency")]
    items += [(NONE_COLOUR, "no answer / no leader"), (MIXED_COLOUR, "DNS names several sites")]
    return [*items, (FAILED_COLOUR, "two leaders"), ("rgba(198, 40, 40, .25)", "fault window")]


class _Scale:
    """Drill seconds -> SVG x."""

    def __init__(self, end: float) -> None:
        self.end = max(end, 1.0)

    def __call__(self, t: float) -> float:
        return round(X0 + (X1 - X0) * min(max(t, 0.0), self.end) / self.end, 2)


def _text(x: float, y: float, body: str, cls: str, anchor: str = "start") -> str:
    return el("text", escape(body), x=x, y=y, text_anchor=anchor, class_=cls)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= v)


def _hline(y: float) -> str:
    return el("line", class_="grid", x1=X0, x2=X1, y1=y, y2=y)


def _stacked_bars(
    x: _Scale,
    top: float,
    height: float,
    t: Sequence[float],
    bucket: float,
    stacks: Mapping[str, Sequence[float]],
    colours: Mapping[str, str],
    name: str,
    label: Callable[[str], str],
) -> list[str]:
    totals = [sum(v[i] for v in stacks.values()) for i in range(len(t))]
    y_max = _nice_max(max(totals, default=0.0))
    bottom = top + height
    out = []
    for frac in (0.0, 0.5, 1.0):
        y = round(bottom - height * frac, 2)
        out += [_hline(y), _text(X0 - 6, y + 4, num(y_max * frac), "tick", "end")]
    base = [0.0] * len(t)
    for key, values in stacks.items():
        marks = []
        for i, v in enumerate(values):
            if not v:
                continue
            h = height * v / y_max
            x0, x1 = x(t[i]), x(t[i] + bucket)
            tip = f"t={num(t[i])} to {num(t[i] + bucket)} s: {label(key)} {num(v)}/s"
            marks.append(
                el(
                    "rect",
                    el("title", escape(tip)),
                    x=x0,
                    y=round(bottom - height * base[i] / y_max - h, 2),
                    width=round(max(x1 - x0 - 1, 0.5), 2),
                    height=round(h, 2),
                    data_t=t[i],
                    data_v=v,
                )
            )
            base[i] += v
        out.append(
            el(
                "g",
                "".join(marks),
                class_="series",
                data_series=f"{name}/{key}",
                data_points=len(marks),
                fill=colours[key],
            )
        )
    return out


def _latency(x: _Scale, top: float, t: Sequence[float], bucket: float, lat: Mapping[str, Any]) -> list[str]:
    values = [v for q in ("p50", "p99") for v in lat.get(q, []) if v]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 1.0
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 1000.0
    hi = hi * 10 if hi <= lo else hi
    span = math.log10(hi) - math.log10(lo)
    bottom = top + CHART_H

    def y(v: float) -> float:
        return round(bottom - CHART_H * (math.log10(max(v, lo)) - math.log10(lo)) / span, 2)

    out = []
    tick = lo
    while tick <= hi * 1.0001:
        shown = f"{num(tick)} ms" if tick < 1000 else f"{num(tick / 1000)} s"
        out += [_hline(y(tick)), _text(X0 - 6, y(tick) + 4, shown, "tick", "end")]
        tick *= 10
    for q, colour in (("p50", P50_COLOUR), ("p99", P99_COLOUR)):
        points = [(t[i], v) for i, v in enumerate(lat.get(q, [])) if v]
        runs: list[list[str]] = []
        prev: float | None = None
        for ti, v in points:
            if prev is None or ti - prev > bucket * 1.5:  # a second without attempts breaks the line
                runs.append([])
            runs[-1].append(f"{x(ti + bucket / 2)},{y(v)}")
            prev = ti
        lines = "".join(el("polyline", points=" ".join(r)) for r in runs if len(r) > 1)
        dots = "".join(
            el(
                "circle",
                el("title", f"t={num(ti)} s: {q} {num(v)} ms"),
                cx=x(ti + bucket / 2),
                cy=y(v),
                r=2.2,
                data_t=ti,
                data_v=v,
            )
            for ti, v in points
        )
        out.append(
            el(
                "g",
                lines + dots,
                class_="series latency",
                data_series=f"latency/{q}",
                data_points=len(points),
                stroke=colour,
                fill=colour,
            )
        )
    return out


def segments(
    samples: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str], end: float
) -> list[tuple[float, float, Mapping[str, Any], int]]:
    """Consecutive samples with the same key merged: (start, stop, first sample, samples merged); a
    sample lasts until the next one, the last one for one bucket."""
    out: list[tuple[float, float, Mapping[str, Any], int]] = []
    for i, s in enumerate(samples):
        stop = samples[i + 1]["t"] if i + 1 < len(samples) else min(end, s["t"] + timeline.BUCKET_SECONDS)
        if out and key(out[-1][2]) == key(s):
            start, _, first, count = out[-1]
            out[-1] = (start, stop, first, count + 1)
        else:
            out.append((s["t"], stop, s, 1))
    return out


def _lane_name(top: float, height: float, title: str) -> str:
    return _text(X0 - 8, top + height / 2 + 4, title, "lane-name", "end")


def _lane(
    x: _Scale,
    top: float,
    name: str,
    title: str,
    samples: Sequence[Mapping[str, Any]],
    describe: Callable[[Mapping[str, Any]], tuple[str, str]],
    end: float,
) -> list[str]:
    """A lane of coloured segments; ``describe(sample)`` -> (label, colour)."""
    segs = segments(samples, lambda s: describe(s)[0], end)
    marks = []
    for start, stop, first, count in segs:
        label, colour = describe(first)
        x0, w = x(start), round(max(x(stop) - x(start), 0.5), 2)
        tip = f"t={num(start)} to {num(stop)} s ({count} sample{'s' * (count != 1)}): {label}"
        body = el("rect", el("title", escape(tip)), x=x0, y=top, width=w, height=LANE_H, fill=colour)
        if w > 6.5 * len(label) + 8:  # a label only where it fits; the tooltip always has it
            body += _text(round(x0 + 4, 2), top + LANE_H / 2 + 4, label, "on-colour")
        marks.append(
            el("g", body, class_="segment", data_from=start, data_to=round(stop, 3), data_label=label)
        )
    return [
        _lane_name(top, LANE_H, title),
        el("g", "".join(marks), class_="lane", data_lane=name, data_segments=len(segs)),
    ]


def _note_lane(top: float, name: str, title: str, note: str, height: float = LANE_H) -> list[str]:
    body = el("rect", x=X0, y=top, width=X1 - X0, height=height, class_="empty")
    body += _text(X0 + 8, top + height / 2 + 4, note, "note")
    return [_lane_name(top, height, title), el("g", body, class_="lane", data_lane=name, data_segments=0)]


def dns_describe(s: Mapping[str, Any]) -> tuple[str, str]:
    if s.get("error") or not s.get("addresses"):
        return "no answer", NONE_COLOUR
    sites = list(s.get("sites") or [])
    colour = site_colour(sites[0]) if len(sites) == 1 else MIXED_COLOUR
    return f"{' + '.join(sites)}: {', '.join(s['addresses'])}", colour


def leader_describe(s: Mapping[str, Any]) -> tuple[str, str]:
    names = list(s.get("leaders") or [])
    if not names:
        return "no leader", NONE_COLOUR
    if len(names) > 1:
        return f"{len(names)} leaders: {', '.join(names)}", FAILED_COLOUR
    sites = list(s.get("sites") or [])
    return names[0], site_colour(sites[0]) if sites else NONE_COLOUR


def alert_labels(a: Mapping[str, Any]) -> str:
    skip = ("alertname", "severity")
    return ", ".join(f"{k}={v}" for k, v in sorted((a.get("labels") or {}).items()) if k not in skip)


def _alerts(
    x: _Scale, top: float, alerts: Sequence[Mapping[str, Any]], fault_at: float, end: float
) -> list[str]:
    rows = []
    for i, a in enumerate(alerts):
        y = top + i * ALERT_H
        fired, resolved = a.get("fired_at"), a.get("resolved_at")
        name = str(a.get("alertname"))
        short = name if len(name) <= 20 else name[:19] + "…"
        body = _text(X0 - 8, y + ALERT_H / 2 + 4, short, "alert-name", "end")
        if fired is not None:
            x0, x1 = x(fired), x(end if resolved is None else resolved)
            when = f"+{num(fired - fault_at)} s" if fired >= fault_at else f"{num(fired - fault_at)} s"
            state = "still firing at the end" if resolved is None else f"resolved at t={num(resolved)} s"
            where = f" ({alert_labels(a)})" if alert_labels(a) else ""
            tip = f"{name}{where}: fired at t={num(fired)} s ({when} after the fault), {state}"
            body += el(
                "rect",
                el("title", escape(tip)),
                x=x0,
                y=y + 3,
                width=round(max(x1 - x0, 2), 2),
                height=ALERT_H - 6,
                fill=SEVERITY_COLOURS.get(str(a.get("severity")), "#455a64"),
                class_="open" if resolved is None else None,
            )
            body += _text(round(min(x0 + 4, X1 - 60), 2), y + ALERT_H / 2 + 4, when, "on-colour")
        rows.append(
            el("g", body, class_="alert", data_alertname=name, data_fired=fired, data_resolved=resolved)
        )
    return [el("g", "".join(rows), class_="lane", data_lane="alerts", data_segments=len(alerts))]


def _panel_name(top: float, title: str) -> str:
    return _text(X0, top - 8, title, "panel-name")


def chart_end(report: Mapping[str, Any]) -> float:
    """The chart's right edge: the end of the load, or a later alert resolution (the drill waits for the
    resolved notifications after the load stopped, and the page draws them where they happened)."""
    series, tl = report["series"], report["timeline"]
    t = series["t"]
    end = max(float(tl.get("ended_at") or 0.0), (t[-1] + float(series["bucket_seconds"])) if t else 0.0)
    resolved = [
        float(a["resolved_at"]) for a in report.get("alerts") or [] if a.get("resolved_at") is not None
    ]
    return max([end, *resolved])


def svg(report: Mapping[str, Any]) -> str:
    series, tl = report["series"], report["timeline"]
    t = series["t"]
    bucket = float(series["bucket_seconds"])
    loaded = max(float(tl.get("ended_at") or 0.0), (t[-1] + bucket) if t else 0.0)
    end = chart_end(report)
    fault_at, restore_at = float(tl["fault_at"]), float(tl["restore_at"])
    x = _Scale(end)
    parts: list[str] = []
    y = first = TOP + GAP

    requests = series["requests_per_second"]
    colours = {k: site_colour(k, list(requests)) for k in requests}
    parts.append(_panel_name(y, "requests / s"))
    parts += _stacked_bars(x, y, CHART_H, t, bucket, requests, colours, "requests", request_label)
    y += CHART_H + GAP
    errors = series["errors"]
    parts.append(_panel_name(y, "failed attempts / s"))
    if errors:
        parts += _stacked_bars(
            x, y, ERRORS_H, t, bucket, errors, error_colours(list(errors)), "errors", error_label
        )
    else:
        parts += _note_lane(y, "errors", "", "no attempt failed", ERRORS_H)
    y += ERRORS_H + GAP
    parts.append(_panel_name(y, "latency (log)"))
    parts += _latency(x, y, t, bucket, series["latency_ms"])
    y += CHART_H + GAP

    dns = series.get("dns") or {"source": "server", "samples": []}
    dns_title = "DNS answer" if dns.get("source") == "server" else "DNS (client used)"
    if dns["samples"]:
        parts += _lane(x, y, "dns", dns_title, dns["samples"], dns_describe, loaded)
    else:
        parts += _note_lane(y, "dns", dns_title, "not sampled in this report")
    y += LANE_H + 8
    leader = series.get("leader")
    if leader and leader["samples"]:
        parts += _lane(x, y, "leader", "DB leader", leader["samples"], leader_describe, loaded)
    else:
        db = report.get("database") or {}
        after = ", ".join(db.get("leader_now") or []) or "none"
        known = f" (before: {db.get('old_leader')}, after: {after})" if db else ""
        parts += _note_lane(y, "leader", "DB leader", f"not sampled in this report{known}")
    y += LANE_H + GAP
    alerts = report.get("alerts")
    parts.append(_panel_name(y, "alerts"))
    if alerts:
        parts += _alerts(x, y, alerts, fault_at, end)
        y += ALERT_H * len(alerts)
    else:
        note = "no alert fired" if alerts is not None else "no alerts in this report (run without monitoring)"
        parts += _note_lane(y, "alerts", "", note, ALERT_H)
        y += ALERT_H
    bottom = y + 6
    under = _axis(x, end, first, bottom) + _fault(x, fault_at, restore_at, bottom)
    height = round(bottom + 38, 2)
    label = (
        f"Timeline of the {report.get('scenario')} drill: requests, failed attempts, latency, DNS, leader "
        f"and alerts; fault from {num(fault_at)} s to {num(restore_at)} s"
    )
    return el(
        "svg",
        "".join(under + parts),
        id="timeline",
        viewBox=f"0 0 {WIDTH} {height}",
        role="img",
        aria_label=label,
        data_end=round(end, 3),
        data_x0=X0,
        data_x1=X1,
        data_width=WIDTH,
        xmlns="http://www.w3.org/2000/svg",
    )


def _axis(x: _Scale, end: float, top: float, bottom: float) -> list[str]:
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if end / s <= 14)
    out = []
    tick = 0.0
    while tick <= end + 1e-9:
        out.append(el("line", class_="vgrid", x1=x(tick), x2=x(tick), y1=top, y2=bottom))
        out.append(_text(x(tick), bottom + 16, num(tick), "tick", "middle"))
        tick += step
    return [*out, _text(X1, bottom + 32, "seconds since the load started", "tick", "end")]


def _fault(x: _Scale, fault_at: float, restore_at: float, bottom: float) -> list[str]:
    """The fault window: behind every panel, from the fault to its lifting."""
    x0, x1 = x(fault_at), x(restore_at)
    tip = f"fault from t={num(fault_at)} s to t={num(restore_at)} s"
    window = el(
        "rect",
        el("title", escape(tip)),
        id="fault-window",
        x=x0,
        y=TOP - 8,
        width=round(max(x1 - x0, 1), 2),
        height=round(bottom - TOP + 8, 2),
        fill=FAULT_FILL,
        data_from=round(fault_at, 3),
        data_to=round(restore_at, 3),
    )
    edges = "".join(el("line", class_="fault-edge", x1=v, x2=v, y1=TOP - 8, y2=bottom) for v in (x0, x1))
    # each label outside the window when there is room, so a short window keeps both readable
    left = (x0 - 4, "end") if x0 - X0 > 110 else (x0 + 4, "start")
    right = (x1 + 4, "start") if X1 - x1 > 110 else (x1 - 4, "end")
    labels = _text(left[0], TOP - 12, f"fault t={num(fault_at)} s", "fault-label", left[1])
    labels += _text(right[0], TOP - 12, f"lifted t={num(restore_at)} s", "fault-label", right[1])
    return [el("g", window + edges + labels, id="fault")]
