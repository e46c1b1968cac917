"""roles/exporters/files/puente-cert-expiry: the end of validity of certificate files, as node_exporter's
textfile collector reads it (alert PuenteCertificateExpiring)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "exporters" / "files" / "puente-cert-expiry"


def make_cert(path: Path, days: int) -> None:
    key = str(path.with_suffix(".key"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", str(path), "-subj", "/CN=test", "-days", str(days)],
        check=True,
        capture_output=True,
    )  # fmt: skip


def test_records_each_certificate_and_counts_unreadable_ones(tmp_path: Path):
    make_cert(tmp_path / "soon.crt", 20)
    make_cert(tmp_path / "later.crt", 400)
    (tmp_path / "broken.crt").write_text("not a certificate\n")
    out = tmp_path / "out" / "puente-certificates.prom"
    out.parent.mkdir()
    proc = subprocess.run([str(SCRIPT), str(out), str(tmp_path / "*.crt"), "/nonexistent/*.crt"], text=True)
    assert proc.returncode == 0
    values = {}
    for line in out.read_text().splitlines():
        if line.startswith("puente_tls_certificate_not_after_timestamp_seconds{"):
            name = line.split('file="', 1)[1].split('"', 1)[0]
            values[Path(name).name] = float(line.rsplit(" ", 1)[1])
    assert set(values) == {"soon.crt", "later.crt"}
    assert abs(values["soon.crt"] - (time.time() + 20 * 86400)) < 120
    assert abs(values["later.crt"] - (time.time() + 400 * 86400)) < 120
    assert "puente_tls_certificate_read_errors 1" in out.read_text()
    assert list(out.parent.iterdir()) == [out], "no temporary file left behind"


def test_usage_without_globs():
    proc = subprocess.run([str(SCRIPT), "/tmp/x.prom"], capture_output=True, text=True)
    assert proc.returncode == 2 and "GLOB" in proc.stderr
