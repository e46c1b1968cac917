"""The restore drill's verdict (src/puente/drill/restore_check.py) on synthetic attempts and rows: which
shipments must be in the restored database, which must not, and what counts as changed or lost."""

from __future__ import annotations

from puente.drill import restore_check, restore_node
from puente.drill.attempts import WRITE, Attempt
from puente.drill.restore_check import Row


def write(request: int, started: float, ended: float, sid: str, ok: bool = True) -> Attempt:
    return Attempt(
        started=started, ended=ended, op=WRITE, request=request, try_no=1, status=201 if ok else 503,
        error=None if ok else "http_503", key=f"key-{sid}", shipment_id=sid if ok else None,
    )  # fmt: skip


ATTEMPTS = [
    write(1, 1.0, 1.2, "a"),  # acknowledged before T=5
    write(2, 4.9, 5.3, "b"),  # in flight at T
    write(3, 5.5, 5.7, "c"),  # started after T
    Attempt(started=2.0, ended=2.1, op=WRITE, request=4, try_no=1, status=503, error="http_503", key="k"),
    write(4, 2.5, 2.6, "d"),  # the retry of request 4 succeeded before T
]


def test_writes_are_split_around_t() -> None:
    exp = restore_check.expectation(ATTEMPTS, 5.0)
    assert set(exp.before) == {"a", "d"}
    assert exp.in_flight == {"b"}
    assert exp.after == {"c"}
    assert exp.keys["a"] == "key-a"


def test_a_faithful_restore_passes() -> None:
    exp = restore_check.expectation(ATTEMPTS, 5.0)
    snap = {i: Row(f"h{i}", 100.0, f"key-{i}") for i in "abcd"}
    restored = {i: snap[i] for i in ("a", "d", "b")}  # b was in flight: either way is right
    verdict = restore_check.judge(exp, snap, restored, t_unix=104.0)
    assert verdict.passed, verdict.as_dict()
    assert verdict.as_dict()["in_flight_at_t"] == 1


def test_missing_changed_and_late_rows_fail() -> None:
    exp = restore_check.expectation(ATTEMPTS, 5.0)
    snap = {i: Row(f"h{i}", 100.0, f"key-{i}") for i in "abcd"} | {"e": Row("he", 200.0, "x")}
    restored = {"a": Row("other", 100.0, "key-a"), "c": snap["c"], "e": snap["e"]}
    verdict = restore_check.judge(exp, snap, restored, t_unix=150.0)
    assert not verdict.passed
    assert verdict.missing == ["d"]
    assert verdict.changed == ["a"]
    # c started after T (client view); e was inserted after T (server view, created_at)
    assert verdict.present_after_t == ["c", "e"]


def test_latest_mode_checks_the_reference_and_measures_the_window() -> None:
    exp = restore_check.expectation(ATTEMPTS, 10.0)
    restored = {"a": Row("x", 1.0, "key-a"), "b": Row("y", 1.0, "wrong"), "c": Row("z", 1.0, "key-c")}
    verdict = restore_check.judge(exp, {}, restored, t_unix=None)
    assert verdict.missing == ["d"] and verdict.changed == ["b"]
    assert restore_check.lost_window(exp, verdict.missing, 10.0) == 7.4
    assert restore_check.lost_window(exp, [], 10.0) == 0.0


def test_rows_and_wal_and_log_parsing() -> None:
    rows = restore_check.parse_rows("id1|abc|1700000000.5|key-1\n\nbad line\nid2|def|1700000001|\n")
    assert rows == {"id1": Row("abc", 1700000000.5, "key-1"), "id2": Row("def", 1700000001.0, "")}
    assert restore_check.wal_bytes("0/5000028", "1/28") == (1 << 32) + 0x28 - 0x5000028
    assert restore_check.wal_bytes(None, "0/1") is None
    log = restore_node.parse_log(
        "LOG:  redo starts at 0/5000028\n"
        "LOG:  recovery stopping before commit of transaction 812, time 2026-12-05 07:31:02.5+00\n"
        "LOG:  redo done at 0/7A3B2C8 system usage: ...\n"
        "LOG:  last completed transaction was at log time 2026-12-05 07:31:01.9+00\n"
    )
    assert log == {
        "redo_start": "0/5000028", "redo_done": "0/7A3B2C8",
        "stopped_before_commit_at": "2026-12-05 07:31:02.5+00",
        "last_completed_transaction_at": "2026-12-05 07:31:01.9+00",
    }  # fmt: skip


def test_a_segment_ends_where_the_next_one_starts() -> None:
    """The rebuilt standby's target: the end of the segment `pgbackrest check` switched and archived (seen
    on the lab: 00000009000000000000003B), 16 MiB segments and others, across a log file boundary."""
    mib16 = 16 * 1024 * 1024
    assert restore_node.segment_end("00000009000000000000003B", mib16) == "0/3C000000"
    assert restore_node.segment_end("0000000100000000000000FF", mib16) == "1/0"
    assert restore_node.segment_end("000000020000000A00000003", 64 * 1024 * 1024) == "A/10000000"


def test_the_page_shows_the_verdict_figures_and_checks() -> None:
    from puente.drill import restore_html

    report = {
        "scenario": "restore-time", "mode": "time", "passed": False, "target_time": "2026-12-05 07:31:02+00",
        "leader": "onprem-db1", "restore_node": "puente-restore1", "client_id": "drill-x",
        "rows": {"acknowledged_before_t": 10, "missing": 1, "changed": 0, "written_after_t": 4,
                 "present_after_t": 0, "in_flight_at_t": 1},
        "figures": {"restore_seconds": 3.2, "recovery_seconds": 1.1, "size_bytes": 40_000_000,
                    "mb_per_s": 9.3, "wal_replayed_bytes": 123, "recovery_point_before_target_seconds": 0.05},
        "checks": [{"name": "acknowledged_writes_restored", "ok": False, "detail": "1 of 10 <missing>"}],
    }  # fmt: skip
    page = restore_html.render(report)
    assert "FAIL" in page and "40.0 MB (9.3 MB/s)" in page and "10 / 1 / 0" in page
    assert "1 of 10 &lt;missing&gt;" in page  # escaped
    assert "default-src 'none'" in page and "<script" not in page
