"""Every step the CLI takes is a plain command an operator could type: this module prints it, then runs it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The project checkout (the CLI is installed editable from it)."""


class CommandError(RuntimeError):
    """A command exited non-zero; carries what it printed so callers can show it."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        super().__init__(f"command failed ({returncode}): {shlex.join(self.argv)}\n{output[-4000:]}")


def show(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Print the command as an operator would type it (with the env vars that differ)."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    line = shlex.join([str(a) for a in argv])
    print(f"+ {prefix + ' ' if prefix else ''}{line}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = False,
    quiet: bool = False,
    cwd: Path | None = None,
    input_text: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one command, printing it first unless ``quiet``.

    ``env`` holds only the variables to add; they are printed with the command.
    """
    args = [str(a) for a in argv]
    if not quiet:
        show(args, env)
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        args,
        env=full_env,
        cwd=cwd or ROOT,
        text=True,
        input=input_text,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stdout or "")
    return proc
