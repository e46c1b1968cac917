"""The drill's HTML page, rendered from real drill reports kept under tests/drill/data/ (no drill runs
here): what the page contains (Python's HTML parser), then what Debian's headless Chromium actually
draws — every bar and point where its second and value say, the fault window at the fault, the DNS and
leader lanes changing when the samples do, the alerts at their times — and a screenshot."""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from headless_chromium import CHROMIUM, SKIP_REASON, png_size, probe

from puente.drill import chart, cli, html_report, timeline
from puente.drill.attempts import READ, WRITE, Attempt, dump_jsonl
from puente.shell import ROOT

REPORTS = sorted((Path(__file__).parent / "data").glob("*-report.json"))
ARTIFACTS = ROOT / "reports" / "drill"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def with_alerts(report: dict[str, Any]) -> dict[str, Any]:
    """The report as it reads once the drill carries Alertmanager's notifications: a site down and a
    leader change fired after the fault, the first resolved after the restore, the second still firing."""
    out = copy.deepcopy(report)
    tl = out["timeline"]
    t0 = 1_764_900_000.0

    def stamp(t: float) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(t0 + t, UTC).isoformat().replace("+00:00", "Z")

    down = {"alertname": "PuenteSiteDown", "severity": "critical", "site": "onprem"}
    leader = {"alertname": "PuenteLeaderChanged", "severity": "warning"}
    fired, moved, resolved = tl["fault_at"] + 9.5, tl["fault_at"] + 14.0, tl["restore_at"] + 6.0
    payloads = [
        {"alerts": [{"status": "firing", "labels": down, "startsAt": stamp(fired)}]},
        {"alerts": [{"status": "firing", "labels": leader, "startsAt": stamp(moved)}]},
        {"alerts": [{"status": "resolved", "labels": down, "startsAt": stamp(fired),
                     "endsAt": stamp(resolved)}]},
    ]  # fmt: skip
    out["alerts"] = timeline.alerts_from_webhook(
        payloads, t0, [t0 + fired + 1, t0 + moved + 1, t0 + resolved]
    )
    return out


def alerted(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its own alerts when the drill recorded them (the receivers'), else with_alerts'."""
    return report if report.get("alerts") else with_alerts(report)


class Elements(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def where(self, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for _, a in self.found
            if all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]


def nonzero(values: list[float | None]) -> int:
    return sum(1 for v in values if v)


@pytest.fixture(params=REPORTS, ids=[p.stem for p in REPORTS])
def report(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


class TestPage:
    def test_fixtures_exist(self):
        assert REPORTS, "no drill report under tests/drill/data/"

    def test_every_second_of_every_series_is_a_mark(self, report: dict[str, Any]):
        found = Elements(html_report.render(report))
        s = report["series"]
        expected = {f"requests/{k}": nonzero(v) for k, v in s["requests_per_second"].items()}
        expected |= {f"errors/{k}": nonzero(v) for k, v in s["errors"].items()}
        expected |= {f"latency/{q}": nonzero(v) for q, v in s["latency_ms"].items()}
        drawn = {a["data-series"]: int(a["data-points"] or 0) for a in found.where(class_="series")}
        drawn |= {a["data-series"]: int(a["data-points"] or 0) for a in found.where(class_="series latency")}
        assert drawn == expected
        assert sum(expected.values()) > 50, "a real drill has dozens of busy seconds"

    def test_fault_window_is_the_reports(self, report: dict[str, Any]):
        (window,) = Elements(html_report.render(report)).where(id="fault-window")
        tl = report["timeline"]
        assert float(window["data-from"] or 0) == pytest.approx(tl["fault_at"], abs=1e-3)
        assert float(window["data-to"] or 0) == pytest.approx(tl["restore_at"], abs=1e-3)

    def test_self_contained(self, report: dict[str, Any]):
        text = html_report.render(with_alerts(report))
        assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text), "fetches something"
        assert "<script" not in text and "<link" not in text and "@import" not in text
        assert "default-src 'none'" in text, "the CSP forbids any fetch, even if a later change adds one"

    def test_verdict_figures_and_checks(self, report: dict[str, Any]):
        text = html_report.render(report)
        verdict = "PASS" if report["passed"] else "FAIL"
        assert f'id="verdict" class="badge {verdict.lower()}">{verdict}<' in text
        assert f"<b>{report['writes']['acknowledged']}</b>writes acknowledged" in text
        for c in report["checks"]:
            assert f"<td>{c['name']}</td>" in text
        failed = copy.deepcopy(report) | {"passed": False}
        assert 'class="badge fail">FAIL<' in html_report.render(failed)

    def test_no_alerts_is_said_not_drawn(self, report: dict[str, Any]):
        without = {k: v for k, v in report.items() if k != "alerts"}
        assert "no alerts in this report (run without monitoring)" in html_report.render(without)
        assert "No alert fired during the drill" in html_report.render(without | {"alerts": []})

    def test_alerts_with_their_delay_after_the_fault(self, report: dict[str, Any]):
        page = with_alerts(report)
        found = Elements(html_report.render(page))
        alerts = found.where(class_="alert")
        assert [a["data-alertname"] for a in alerts] == ["PuenteSiteDown", "PuenteLeaderChanged"]
        assert "data-resolved" not in alerts[1], "still firing: no resolution drawn"
        text = html_report.render(page)
        assert (
            "<td>PuenteSiteDown</td><td>critical</td><td>site=onprem</td><td>+9.5 s</td><td>+10.5 s</td>"
            in text
        )
        assert "<td>still firing</td>" in text


def test_leader_lane_merges_samples_and_flags_two_leaders():
    samples = [{"t": float(i), "leaders": ["onprem-db1"], "sites": ["onprem"]} for i in range(5)]
    samples += [{"t": 5.0, "leaders": [], "sites": []}, {"t": 6.0, "leaders": [], "sites": []}]
    samples += [{"t": 7.0, "leaders": ["cloud-db1", "onprem-db1"], "sites": ["cloud", "onprem"]}]
    samples += [{"t": 8.0 + i, "leaders": ["cloud-db1"], "sites": ["cloud"]} for i in range(3)]
    segs = chart.segments(samples, lambda s: chart.leader_describe(s)[0], end=10.5)
    assert [(a, b, chart.leader_describe(s)[0], n) for a, b, s, n in segs] == [
        (0.0, 5.0, "onprem-db1", 5),
        (5.0, 7.0, "no leader", 2),
        (7.0, 8.0, "2 leaders: cloud-db1, onprem-db1", 1),
        (8.0, 10.5, "cloud-db1", 3),
    ]
    assert chart.leader_describe(samples[7])[1] == chart.FAILED_COLOUR


def test_older_report_is_completed_from_its_attempts(tmp_path: Path):
    """``puente drill html DIR`` on a report written before the drill recorded series."""
    old = {k: v for k, v in load(REPORTS[0]).items() if k != "series"}
    (tmp_path / "report.json").write_text(json.dumps(old))
    attempts = [Attempt(i / 10, i / 10 + 0.02, READ if i % 3 else WRITE, i, 1, status=200, site="onprem",
                        address="10.89.1.10") for i in range(100)]  # fmt: skip
    dump_jsonl(attempts, tmp_path / "attempts.jsonl")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["drill", "html", str(tmp_path)])
    assert args.func(args) == 0
    found = Elements((tmp_path / "report.html").read_text())
    (dns,) = found.where(data_lane="dns")
    assert dns["data-segments"] == "1"
    (requests,) = found.where(data_series="requests/onprem")
    assert requests["data-points"] == "10"


def test_drill_prints_where_the_page_is(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    result = {**load(REPORTS[0]), "output_dir": ".cache/drill/x", "html": ".cache/drill/x/report.html"}
    monkeypatch.setattr(cli.topology, "load", lambda files: object())
    monkeypatch.setattr(cli.scenarios, "baseline", lambda topo, opts: result)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["drill", "baseline"])
    args.func(args)
    assert "timeline (HTML): .cache/drill/x/report.html" in capsys.readouterr().out


# -- in the browser ---------------------------------------------------------------------------------------

# Measures what was drawn, in seconds on the chart's own axis (from the SVG's on-screen box), and writes
# it into the DOM that --dump-dom prints.
_PROBE = """
window.addEventListener("load", function () {
  var svg = document.getElementById("timeline"), box = svg.getBoundingClientRect();
  var k = box.width / svg.viewBox.baseVal.width, d = svg.dataset;
  function secs(px) { return ((px - box.left) / k - d.x0) / (d.x1 - d.x0) * d.end; }
  function all(root, sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }
  var series = {};
  all(svg, "g.series").forEach(function (g) {
    series[g.dataset.series] = all(g, "rect, circle").filter(function (m) {
      var r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0;
    }).map(function (m) {
      var r = m.getBoundingClientRect();
      return {t: +m.dataset.t, v: +m.dataset.v, from: secs(r.left), to: secs(r.right), h: r.height,
              mid: secs(r.left + r.width / 2), cy: r.top + r.height / 2};
    });
  });
  var lanes = {};
  all(svg, "g.lane").forEach(function (g) {
    lanes[g.dataset.lane] = all(g, "g.segment").map(function (s) {
      var r = s.querySelector("rect").getBoundingClientRect();
      return {label: s.dataset.label, from: secs(r.left), to: secs(r.right), h: r.height};
    });
  });
  var alerts = all(svg, "g.alert").map(function (a) {
    var r = a.querySelector("rect"); r = r && r.getBoundingClientRect();
    return {name: a.dataset.alertname, from: r ? secs(r.left) : null, to: r ? secs(r.right) : null};
  });
  var w = document.getElementById("fault-window").getBoundingClientRect(), de = document.documentElement;
  document.body.setAttribute("data-probe", JSON.stringify({series: series, lanes: lanes, alerts: alerts,
    fault: [secs(w.left), secs(w.right)], faultHeight: w.height, svg: [box.width, box.height],
    scrollWidth: de.scrollWidth, clientWidth: de.clientWidth}));
});
"""


def problems(seen: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """What Chromium drew that does not match the report; empty when the chart shows the data."""
    out: list[str] = []
    s, tl = report["series"], report["timeline"]
    bucket = s["bucket_seconds"]
    tol = 0.2  # seconds: well under a bucket, well over a pixel
    if seen["scrollWidth"] > seen["clientWidth"]:
        out.append(f"sideways scrolling: {seen['scrollWidth']} > {seen['clientWidth']}")
    for name, expected in (("fault", tl["fault_at"]), ("lifted", tl["restore_at"])):
        got = seen["fault"][0 if name == "fault" else 1]
        if abs(got - expected) > tol:
            out.append(f"fault window: {name} edge at {got:.2f} s, report says {expected:.2f} s")
    panels = {"requests": s["requests_per_second"], "errors": s["errors"], "latency": s["latency_ms"]}
    for panel, stacks in panels.items():
        ratios = []
        for key, values in stacks.items():
            want = [(t, v) for t, v in zip(s["t"], values, strict=True) if v]
            marks = seen["series"].get(f"{panel}/{key}", [])
            if [(m["t"], m["v"]) for m in marks] != want:
                out.append(f"{panel}/{key}: {len(marks)} marks drawn, {len(want)} seconds with data")
                continue
            for m in marks:
                start = m["mid"] - bucket / 2 if panel == "latency" else m["from"]
                if abs(start - m["t"]) > tol:
                    out.append(f"{panel}/{key}: the mark of t={m['t']} s is drawn at {start:.2f} s")
            ratios += [m["h"] / m["v"] for m in marks if panel != "latency"]
            if panel == "latency":  # log scale: a higher value is drawn higher (smaller y)
                ordered = sorted(marks, key=lambda m: m["v"])
                if any(a["cy"] < b["cy"] - 0.5 for a, b in itertools.pairwise(ordered)):
                    out.append(f"{panel}/{key}: heights do not follow the values")
        if ratios and max(ratios) - min(ratios) > 0.02 * max(ratios) + 0.1:
            out.append(
                f"{panel}: bar heights are not proportional to the values ({min(ratios)}..{max(ratios)})"
            )
    for lane, describe in (("dns", chart.dns_describe), ("leader", chart.leader_describe)):
        samples = (s.get(lane) or {}).get("samples") or []
        segs = chart.segments(samples, lambda x, f=describe: f(x)[0], 1e9)
        want = [(a, b, describe(x)[0]) for a, b, x, _ in segs]
        got = seen["lanes"].get(lane, [])
        if [g["label"] for g in got] != [w[2] for w in want]:
            out.append(f"{lane} lane: {[g['label'] for g in got]} drawn, samples say {[w[2] for w in want]}")
        elif any(abs(g["from"] - w[0]) > tol for g, w in zip(got, want, strict=True)):
            out.append(f"{lane} lane: segments drawn at other times than the samples")
    end = chart.chart_end(report)
    for a, g in zip(report.get("alerts") or [], seen["alerts"], strict=False):
        stop = end if a["resolved_at"] is None else a["resolved_at"]
        if g["from"] is None or abs(g["from"] - a["fired_at"]) > tol or abs(g["to"] - stop) > tol:
            out.append(f"alert {a['alertname']}: drawn {g['from']}..{g['to']}, fired {a['fired_at']}..{stop}")
    if len(seen["alerts"]) != len(report.get("alerts") or []):
        out.append(f"{len(seen['alerts'])} alerts drawn, the report has {len(report.get('alerts') or [])}")
    return out


def _page(report: dict[str, Any], where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    return html_report.write(where, report)


@needs_chromium
@pytest.mark.parametrize("width", [1280, 600])
def test_chromium_draws_the_data(report: dict[str, Any], tmp_path: Path, width: int):
    page = alerted(report)
    seen = probe(_page(page, tmp_path / "page"), tmp_path / "profile", _PROBE, width=width)
    assert problems(seen, page) == []
    assert seen["svg"][0] >= width * 0.85, f"the chart does not take the page's width: {seen['svg']}"
    assert seen["faultHeight"] > 0.8 * seen["svg"][1], "the fault window does not span the panels"


@needs_chromium
def test_the_probe_sees_a_chart_that_lies(tmp_path: Path):
    """The check above can fail: a fault window drawn 5 s late, a missing bar and a leader change drawn
    2 s late are all caught."""
    report = with_alerts(load(REPORTS[-1]))
    assert report["series"]["leader"], "the newest fixture samples the leader"
    page = _page(report, tmp_path / "page")
    text = page.read_text()
    x = chart._Scale(max(report["timeline"]["ended_at"], report["series"]["t"][-1] + 1))
    shifted = x(report["timeline"]["fault_at"] + 5)
    text = re.sub(r'(id="fault-window" x=")[0-9.]+', rf"\g<1>{shifted}", text, count=1)
    text = re.sub(r'(data-series="requests/cloud"[^>]*>)<rect[^>]*>.*?</rect>', r"\1", text, count=1)
    late = re.compile(r'(data-label="cloud-db1"><rect x=")([0-9.]+)')
    text = late.sub(lambda m: f"{m[1]}{float(m[2]) + 2 * (chart.X1 - chart.X0) / x.end}", text, count=1)
    page.write_text(text)
    found = problems(probe(page, tmp_path / "profile", _PROBE), report)
    assert any(p.startswith("fault window: fault edge") for p in found), found
    assert any(p.startswith("requests/cloud:") for p in found), found
    assert "leader lane: segments drawn at other times than the samples" in found, found


@needs_chromium
def test_screenshot(tmp_path: Path):
    """What a person sees, kept under reports/drill/ (CI artifacts); its size says something was drawn."""
    from headless_chromium import chromium

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = alerted(load(REPORTS[-1]))
    assert report["alerts"], "the screenshot shows the alert lane filled"
    page = _page(report, tmp_path / "page")
    shot = ARTIFACTS / f"{REPORTS[-1].stem}.png"
    shot.unlink(missing_ok=True)
    proc = chromium(tmp_path / "profile", "--window-size=1280,1500", f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), proc.stderr[-1500:]
    assert png_size(shot) == (1280, 1500)
    blank = tmp_path / "blank.png"
    (tmp_path / "blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    chromium(tmp_path / "profile", "--window-size=1280,1500", f"--screenshot={blank}",
             (tmp_path / "blank.html").as_uri())  # fmt: skip
    assert shot.stat().st_size > 10 * blank.stat().st_size, (shot.stat().st_size, blank.stat().st_size)


def test_an_alert_resolved_after_the_load_stopped_stretches_the_time_axis():
    """The drill waits for resolved notifications after the load stops: the chart reaches them."""
    page = with_alerts(load(REPORTS[-1]))
    late = round(page["timeline"]["ended_at"] + 40.0, 3)
    page["alerts"][1]["resolved_at"] = late
    assert chart.chart_end(page) == late
    found = Elements(html_report.render(page))
    (svg,) = found.where(id="timeline")
    assert float(svg["data-end"]) == late
    (dns,) = found.where(data_lane="dns")
    assert dns["data-segments"] != "0"
