"""Test support: pages as people see them, in Debian's headless Chromium (scripts/bootstrap.sh installs
it). Tests that need it skip with ``SKIP_REASON`` when it is absent."""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")
SKIP_REASON = "Debian's chromium is not installed (scripts/bootstrap.sh installs it)"


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, SKIP_REASON
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--hide-scrollbars", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def probe(page: Path, profile: Path, script: str, width: int = 1280, height: int = 900) -> Any:
    """Load ``page`` with ``script`` appended to its body; the script stores a JSON value in the
    body's ``data-probe`` attribute, which ``--dump-dom`` prints and this returns parsed. The copy's
    Content-Security-Policy is opened for inline scripts (the page itself runs none)."""
    copy = page.with_name(f"probe-{page.name}")
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"(default-src 'none';)", r"\1 script-src 'unsafe-inline';", text, count=1)
    copy.write_text(text.replace("</body>", f"<script>{script}</script></body>"), encoding="utf-8")
    proc = chromium(profile, f"--window-size={width},{height}", "--virtual-time-budget=3000", "--dump-dom",
                    copy.as_uri())  # fmt: skip
    m = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert m, f"chromium printed no probe (exit {proc.returncode}): {proc.stderr[-1500:]}"
    return json.loads(html.unescape(m.group(1)))


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)
