"""`puente drill` holds the lab's lock (src/puente/lab/lock.py) while it runs: a second drill, or a
`puente lab up`, waits instead of cutting the same sites under it (two drills overlapped on the lab and
spoiled each other's figures)."""

from __future__ import annotations

import argparse
import fcntl
import threading
import time
from pathlib import Path

import pytest

from puente.drill import cli, restore_cli
from puente.lab import paths


@pytest.fixture
def lab_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paths, "CACHE", tmp_path)
    return tmp_path / "lab.lock"


@pytest.mark.parametrize(("module", "inner"), [(cli, "_drill"), (restore_cli, "_restore")])
def test_a_drill_waits_for_the_lab_lock_and_holds_it(
    lab_cache: Path, monkeypatch: pytest.MonkeyPatch, module: object, inner: str
) -> None:
    seen: list[bool] = []

    def drill(_args: argparse.Namespace) -> int:
        # while the drill runs, nobody else can take the lock
        with open(lab_cache) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append(False)
            except BlockingIOError:
                seen.append(True)
        return 0

    monkeypatch.setattr(module, inner, drill)
    lab_cache.parent.mkdir(parents=True, exist_ok=True)
    holder = open(lab_cache, "a+")  # noqa: SIM115 - released by the thread below
    fcntl.flock(holder, fcntl.LOCK_EX)
    released = threading.Event()

    def release() -> None:
        time.sleep(0.3)
        released.set()
        fcntl.flock(holder, fcntl.LOCK_UN)
        holder.close()

    threading.Thread(target=release).start()
    assert module._run(argparse.Namespace(drill="site-failover")) == 0  # type: ignore[attr-defined]
    assert released.is_set(), "the drill ran while another command held the lab's lock"
    assert seen == [True]
