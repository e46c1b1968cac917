"""podman, always with the lab's containers.conf (runc, cgroupfs, file events, ulimits under the host's)."""

from __future__ import annotations

import json
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from puente.lab import paths
from puente.shell import CommandError, run


def env() -> dict[str, str]:
    return {"CONTAINERS_CONF": str(paths.CONTAINERS_CONF.relative_to(paths.LAB_DIR.parent))}


def podman(*args: str | Path, capture: bool = False, quiet: bool = False, check: bool = True) -> str:
    proc = run(["podman", *args], env=env(), capture=capture, quiet=quiet, check=check)
    return proc.stdout or ""


def remove(*names: str) -> None:
    """``podman rm --force`` the containers ``names``.

    A container whose conmon was killed (its session ended) makes the first ``rm`` fail after waiting for
    the exit file conmon never writes; that attempt moves podman's record to "stopped", so a second
    ``rm`` succeeds. The retry is printed like every other step."""
    if not names:
        return
    if run(["podman", "rm", "--force", "--time", "5", *names], env=env(), check=False).returncode == 0:
        return
    print("podman could not stop every container (its conmon is gone): removing them again", flush=True)
    podman("rm", "--force", "--ignore", "--time", "0", *names)


def exists(kind: str, name: str) -> bool:
    """``podman image|network|container exists`` (quiet: it is a probe, not a step)."""
    return (
        run(["podman", kind, "exists", name], env=env(), quiet=True, check=False, capture=True).returncode
        == 0
    )


def inspect(kind: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """Inspect the objects that exist among ``names`` (missing ones are skipped)."""
    present = [n for n in names if exists(kind, n)]
    if not present:
        return []
    out = run(["podman", kind, "inspect", *present], env=env(), quiet=True, capture=True).stdout
    try:
        return list(json.loads(_json_part(out)))
    except json.JSONDecodeError as exc:
        raise CommandError(["podman", kind, "inspect", *present], 0, out) from exc


def _json_part(out: str) -> str:
    """podman prints harmless warnings (e.g. "failed to connect to syslog") before its JSON."""
    starts = [i for i in (out.find("["), out.find("{")) if i >= 0]
    return out[min(starts) :] if starts else out


def ps(label: str = paths.LABEL) -> list[dict[str, Any]]:
    out = run(
        ["podman", "ps", "--all", "--filter", f"label={label}", "--format", "json"],
        env=env(),
        quiet=True,
        capture=True,
    ).stdout
    return list(json.loads(_json_part(out)) or [])


def check_ulimits() -> None:
    """The conf's default_ulimits must not exceed the host's hard limits (the runtime refuses to start)."""
    wanted = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
    text = paths.CONTAINERS_CONF.read_text()
    for name, rlimit in wanted.items():
        for line in text.splitlines():
            line = line.strip().strip('",')
            if line.startswith(f"{name}="):
                soft_hard = line.split("=", 1)[1].split(":")
                limit = max(int(v) for v in soft_hard)
                hard = resource.getrlimit(rlimit)[1]
                if hard != resource.RLIM_INFINITY and limit > hard:
                    raise CommandError(
                        ["check", "ulimits"],
                        1,
                        f"{paths.CONTAINERS_CONF}: {name}={limit} exceeds this host's hard limit {hard}; "
                        "lower default_ulimits there",
                    )
