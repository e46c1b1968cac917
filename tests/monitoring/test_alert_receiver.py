"""roles/monitoring/files/puente-alert-receiver: the lab's Alertmanager webhook recorder, run here on
loopback: every alert of a notification becomes one JSON line, appended; bad requests are refused."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "monitoring" / "files" / "puente-alert-receiver"

# Alertmanager 0.25's webhook payload (version 4), two alerts of one group.
PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="PuenteSiteDown"}',
    "status": "firing",
    "receiver": "puente",
    "groupLabels": {"alertname": "PuenteSiteDown"},
    "commonLabels": {"alertname": "PuenteSiteDown"},
    "commonAnnotations": {},
    "externalURL": "http://10.89.2.41:9093/",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "PuenteSiteDown", "site": "onprem", "monitor": "cloud"},
         "annotations": {"summary": "Site onprem: no node answers"}, "startsAt": "2026-12-05T07:30:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "a1"},
        {"status": "resolved",
         "labels": {"alertname": "PuenteSiteDown", "site": "witness", "monitor": "cloud"},
         "annotations": {}, "startsAt": "2026-12-05T07:20:00Z", "endsAt": "2026-12-05T07:25:00Z",
         "fingerprint": "b2"},
    ],
}  # fmt: skip


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "alerts.jsonl"
    proc = subprocess.Popen([str(SCRIPT), "127.0.0.1", str(port), str(log)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(50):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url + "alerts", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_each_alert_becomes_one_json_line_appended(receiver: tuple[str, Path]):
    url, log = receiver
    assert post(url, json.dumps(PAYLOAD).encode()) == 200
    assert post(url, json.dumps(PAYLOAD).encode()) == 200
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 4
    first = lines[0]
    assert (first["status"], first["alertname"]) == ("firing", "PuenteSiteDown")
    assert first["labels"]["site"] == "onprem"
    assert first["annotations"]["summary"] == "Site onprem: no node answers"
    assert first["starts_at"] == "2026-12-05T07:30:00Z" and first["received_at"].endswith("Z")
    assert lines[1]["status"] == "resolved" and lines[1]["ends_at"] == "2026-12-05T07:25:00Z"


def test_bad_requests_are_refused_and_nothing_is_written(receiver: tuple[str, Path]):
    url, log = receiver
    assert post(url, b"not json") == 400
    assert not log.exists()
