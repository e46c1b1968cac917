"""The HTML report as people see it: rendered by Debian's headless Chromium, screenshot kept under
reports/audit/, no sideways scrolling at laptop and narrow widths, summary before the results,
nothing loaded from anywhere."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from headless_chromium import CHROMIUM, chromium

from puente.shell import ROOT

ARTIFACTS = ROOT / "reports" / "audit"
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/bootstrap.sh installs it)"
)

# Opens every <details> (folded evidence counts too), then writes what the layout measured into the DOM
# that --dump-dom prints.
_PROBE = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var de = document.documentElement;
  var ids = Array.prototype.map.call(document.querySelectorAll("main > section"),
    function (s) { return s.id; });
  var widest = 0; document.querySelectorAll("body *").forEach(function (e) {
    widest = Math.max(widest, e.getBoundingClientRect().right); });
  document.body.setAttribute("data-probe", JSON.stringify({scrollWidth: de.scrollWidth,
    clientWidth: de.clientWidth, widest: Math.ceil(widest), sections: ids}));
});
</script>"""


@pytest.fixture(scope="module")
def probed_report(synthetic_run, tmp_path_factory) -> Path:
    proc, out = synthetic_run
    assert (out / "report.html").exists(), proc.stdout + proc.stderr
    copy = tmp_path_factory.mktemp("html") / "probe.html"
    copy.write_text((out / "report.html").read_text().replace("</body>", _PROBE + "</body>"))
    return copy


def probe(report: Path, profile: Path, width: int) -> dict:
    proc = chromium(
        profile, f"--window-size={width},900", "--virtual-time-budget=3000", "--dump-dom", report.as_uri()
    )
    m = re.search(r'data-probe="([^"]+)"', proc.stdout)
    assert m, f"chromium printed no probe (exit {proc.returncode}): {proc.stderr[-1500:]}"
    return dict(json.loads(html.unescape(m.group(1))))


# 500 px: Chromium's smallest window; 800: a half-screen window; 1280: a laptop.
@pytest.mark.parametrize("width", [1280, 800, 500])
def test_no_sideways_scrolling_summary_first(probed_report: Path, tmp_path: Path, width: int):
    seen = probe(probed_report, tmp_path / "profile", width)
    assert seen["clientWidth"] <= width
    assert seen["scrollWidth"] <= seen["clientWidth"], f"sideways scrolling at {width}px: {seen}"
    assert seen["widest"] <= seen["clientWidth"], f"an element sticks out at {width}px: {seen}"
    assert seen["sections"][:2] == ["summary", "results"], seen


def test_the_probe_sees_sideways_scrolling(probed_report: Path, tmp_path: Path):
    """The check above can fail: one unwrapped line of evidence makes the page scroll sideways."""
    wide = tmp_path / "wide.html"
    wide.write_text(
        probed_report.read_text().replace("</main>", f'<pre style="white-space:pre">{"x" * 400}</pre></main>')
    )
    seen = probe(wide, tmp_path / "profile", 800)
    assert seen["scrollWidth"] > seen["clientWidth"], seen


def test_screenshot_is_kept_as_an_artifact(synthetic_run, tmp_path: Path):
    _, out = synthetic_run
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-synthetic.png"
    shot.unlink(missing_ok=True)
    proc = chromium(
        tmp_path / "profile",
        "--window-size=1024,1400",
        f"--screenshot={shot}",
        (out / "report.html").as_uri(),
    )
    assert shot.exists(), proc.stderr[-1500:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_report_is_self_contained(synthetic_run):
    _, out = synthetic_run
    text = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "loads something from a network"
    assert "<link" not in text and "@import" not in text
    assert "default-src 'none'" in text, "the CSP forbids any fetch, even if a template change adds one"
