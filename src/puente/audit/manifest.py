"""MANIFEST.sha256: the SHA-256 of every file of a report directory, in ``sha256sum`` format.

Anyone can check it without Puente (``cd DIR && sha256sum -c MANIFEST.sha256``); ``puente audit verify DIR``
does the same and also refuses files that are missing from the manifest or from the directory.

The manifest alone shows accidental change, not tampering (whoever edits a file can rewrite the manifest):
``puente audit --sign-key`` signs it with minisign, and ``verify -p KEY.pub`` checks that signature first
(:mod:`puente.audit.signing`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

NAME = "MANIFEST.sha256"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
# Files next to the manifest (top level only) that are about it, not part of the report.
_BESIDE = {NAME, f"{NAME}.minisig", f"{NAME}.sig", f"{NAME}.bundle"}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.rglob("*") if p.is_file() and p.relative_to(directory).as_posix() not in _BESIDE
    )


def write(directory: Path) -> Path:
    lines = [f"{sha256(p)}  {p.relative_to(directory).as_posix()}" for p in _files(directory)]
    target = directory / NAME
    target.write_text("\n".join(lines) + "\n")
    return target


@dataclass
class Verification:
    ok_files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.ok_files)


def verify(directory: Path) -> Verification:
    result = Verification()
    manifest = directory / NAME
    if not manifest.is_file():
        result.problems.append(f"{manifest}: no manifest")
        return result
    listed: dict[str, str] = {}
    for n, line in enumerate(manifest.read_text().splitlines(), start=1):
        m = _LINE.match(line)
        if not m:
            result.problems.append(f"{NAME}:{n}: not a sha256sum line: {line[:80]!r}")
            continue
        listed[m.group(2)] = m.group(1)
    for name, expected in sorted(listed.items()):
        path = directory / name
        if ".." in Path(name).parts or not path.is_file():
            result.problems.append(f"{name}: missing")
        elif sha256(path) != expected:
            result.problems.append(f"{name}: MODIFIED (sha256 differs from the manifest)")
        else:
            result.ok_files.append(name)
    for path in _files(directory):
        rel = path.relative_to(directory).as_posix()
        if rel not in listed:
            result.problems.append(f"{rel}: not in the manifest (added after the report was made)")
    return result
