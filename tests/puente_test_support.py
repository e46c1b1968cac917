"""Small helpers shared by tests in several folders (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def load_module(path: Path, name: str | None = None, *, register: bool = False) -> ModuleType:
    """A Python file that is not in a package (roles' filter_plugins, plugins/, bench/, audit/) as a module
    named ``name`` (the file's stem by default). ``register``: put it in sys.modules first, as a module
    that dataclasses or pickling look up by name needs; an already registered one is returned as it is."""
    name = name or path.stem
    if register and name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 1) -> Any:
    """Call ``check`` until it returns something true (returned); fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
