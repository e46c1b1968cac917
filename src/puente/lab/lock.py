"""One `puente lab up|down|scale` or `puente drill` at a time per lab: a second one waits instead of racing
the first (two converges of the same nodes fight over apt locks and restart each other's services; two
drills cut the same sites and spoil each other's figures)."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from puente.lab import paths


@contextmanager
def exclusive() -> Iterator[None]:
    paths.CACHE.mkdir(parents=True, exist_ok=True)
    path = paths.CACHE / "lab.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            message = f"another `puente lab` or `puente drill` (pid {holder}) is working on this lab: waiting"
            print(message, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
