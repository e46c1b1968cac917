"""Evidence: what each control looked at on a host, and what it saw.

Controls use the ``host`` fixture exactly like pytest-testinfra's; it is an :class:`EvidenceHost` that wraps
testinfra's host and records every command it runs (``host.run``, ``host.check_output``) and every module
attribute it reads (``host.file(p).mode``, ``host.service(s).is_running`` ...). A control can add a derived
finding with ``evidence.record(...)``. The records travel with the test report (also across xdist
workers) and end up, per host and control, in the JSON, HTML and JUnit reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import testinfra.host
import testinfra.modules

MAX_LINES = 40
MAX_CHARS = 3000


def trim(text: str, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> str:
    """Keep the head and tail of long output, saying how much was left out."""
    text = text.rstrip("\n")
    lines = text.splitlines()
    if len(lines) > max_lines:
        head, tail = lines[: max_lines // 2], lines[-(max_lines // 2) :]
        lines = [*head, f"… {len(lines) - len(head) - len(tail)} lines trimmed …", *tail]
        text = "\n".join(lines)
    if len(text) > max_chars:
        half = max_chars // 2
        text = f"{text[:half]}\n… {len(text) - 2 * half} characters trimmed …\n{text[-half:]}"
    return text


@dataclass
class Record:
    kind: str  # "command" | "file" | "module" | "note"
    what: str  # the command line, or "file /etc/ssh/sshd_config: mode"
    output: str  # what it saw (trimmed)
    rc: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def as_text(self) -> str:
        head = f"$ {self.what}" if self.kind == "command" else self.what
        rc = f"  (exit {self.rc})" if self.rc is not None else ""
        return f"{head}{rc}\n{self.output}".rstrip()


class Recorder:
    """The evidence of one test on one host (the ``evidence`` fixture)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def record(self, what: str, output: Any = "", *, kind: str = "note", rc: int | None = None) -> None:
        self.records.append(Record(kind=kind, what=trim(what, 8, 600), output=trim(_show(output)), rc=rc))

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.records]

    def as_text(self) -> str:
        return "\n\n".join(r.as_text() for r in self.records)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list | tuple | set | frozenset):
        return "\n".join(_show(v) for v in value) if value else "(empty)"
    return str(value)


def _label(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    shown = [repr(a) if not isinstance(a, str) else a for a in args]
    shown += [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name} {' '.join(shown)}".strip()


class _RecordingModule:
    """A testinfra module object whose attribute reads and method calls are recorded."""

    def __init__(self, module: Any, label: str, recorder: Recorder) -> None:
        self._module = module
        self._label = label
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if callable(value):

            def call(*args: Any, **kwargs: Any) -> Any:
                result = value(*args, **kwargs)
                self._recorder.record(
                    f"{self._label}: {_label(name, args, kwargs)}", _observed(name, result), kind="module"
                )
                return result

            return call
        self._recorder.record(f"{self._label}: {name}", _observed(name, value), kind="module")
        return value


def _observed(name: str, value: Any) -> Any:
    if name == "mode" and isinstance(value, int):
        return f"0o{value:o}"
    return value


class EvidenceHost:
    """pytest-testinfra's ``host``, recording what the control looks at.

    ``host.name`` is the inventory name, ``host.groups`` its inventory groups; ``host.raw`` is testinfra's
    own host for the rare call that should leave no evidence.
    """

    def __init__(
        self,
        raw: testinfra.host.Host,
        name: str,
        groups: list[str],
        recorder: Recorder,
        cache: dict[tuple[str, ...], Any] | None = None,
    ) -> None:
        self.raw = raw
        self.name = name
        self.groups = groups
        self.evidence = recorder
        self._cache = cache if cache is not None else {}

    def snapshot(self, command: str, *args: str) -> str:
        """``check_output`` run once per host and audit run, for output many parametrized results read
        (``sshd -T``, ``nft -j list ruleset``, ``systemctl show``); each result records it as its evidence."""
        key = (command, *args)
        if key not in self._cache:
            self._cache[key] = self.raw.run(command, *args)
        result = self._cache[key]
        cmd = result.command.decode() if isinstance(result.command, bytes) else str(result.command)
        self.evidence.record(cmd, f"{result.stdout}{result.stderr}", kind="command", rc=result.rc)
        assert result.rc == 0, f"command failed (exit {result.rc}): {cmd}: {result.stderr}"
        return str(result.stdout.rstrip("\r\n"))

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        result = self.raw.run(command, *args, **kwargs)
        out = result.stdout if not result.stderr else f"{result.stdout}{result.stderr}"
        cmd = result.command.decode() if isinstance(result.command, bytes) else str(result.command)
        self.evidence.record(cmd, out, kind="command", rc=result.rc)
        return result

    def check_output(self, command: str, *args: str, **kwargs: Any) -> str:
        result = self.run(command, *args, **kwargs)
        assert result.rc == 0, f"command failed (exit {result.rc}): {result.command!r}: {result.stderr}"
        return str(result.stdout.rstrip("\r\n"))

    def exists(self, command: str) -> bool:
        found = bool(self.raw.exists(command))
        self.evidence.record(f"command {command}: exists", found, kind="module")
        return found

    def file(self, path: str) -> Any:
        return _RecordingModule(self.raw.file(path), f"file {path}", self.evidence)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name in testinfra.modules.modules:

            def make(*args: Any, **kwargs: Any) -> Any:
                return _RecordingModule(attr(*args, **kwargs), _label(name, args, kwargs), self.evidence)

            return make
        return attr
