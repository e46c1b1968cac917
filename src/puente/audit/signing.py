"""The report's signature: minisign over MANIFEST.sha256, which holds the SHA-256 of every other file.

The auditor's organisation holds the secret key and signs; whoever receives the report holds the public key
and verifies. Puente holds no key: it runs minisign (Debian's ``minisign`` package) and prints each command.

    minisign -G -p audit.pub -s audit.key            # once, by the auditor's organisation
    puente audit -i INV --out OUT --sign-key audit.key   # writes OUT/MANIFEST.sha256.minisig
    puente audit verify OUT -p audit.pub             # the signature, then every file against the manifest

Keys and signatures are parsed here only to give a clear reason (a password-protected key without a
password, a signature made by another key); minisign alone decides whether a signature is valid.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from puente.audit import manifest
from puente.shell import run

SIG_NAME = f"{manifest.NAME}.minisig"
PASSWORD_ENV = "PUENTE_AUDIT_SIGN_PASSWORD"
"""The secret key's password, for runs without --sign-password-file (e.g. a CI secret)."""

_SECRET_KEY_BYTES = 2 + 2 + 2 + 32 + 8 + 8 + 104  # algorithms, salt, scrypt limits, key id + key + checksum
_PUBLIC_KEY_BYTES = 2 + 8 + 32
_SIGNATURE_BYTES = 2 + 8 + 64


# What minisign -S says while it works (on stdout, interleaved with its errors on stderr).
_PROGRESS = re.compile(
    r"Password: |Deriving a key from the password and decrypting the secret key\.\.\. ?|"
    r"^done$",
    re.MULTILINE,
)


class SigningError(Exception):
    """Bad input to signing or verifying (unreadable or malformed key, no minisign): the CLI exits 2."""


def minisign() -> str:
    path = shutil.which("minisign")
    if path is None:
        raise SigningError(
            "minisign is not installed (Debian package `minisign`; scripts/bootstrap.sh installs it)"
        )
    return "minisign"


def _key_id(keynum: bytes) -> str:
    """As minisign prints it: the 8-byte key number as a little-endian integer, in hex (no leading 0)."""
    return f"{int.from_bytes(keynum, 'little'):X}"


def _payload(line: str, size: int, what: str, kind: str) -> bytes:
    try:
        raw = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size or raw[:2] not in (b"Ed", b"ED"):
        raise SigningError(f"{what}: not a minisign {kind}")
    return raw


def _second_line(path: Path, what: str) -> str:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise SigningError(f"{what} {path}: cannot read it: {reason}") from exc
    if len(lines) < 2 or not lines[0].startswith("untrusted comment:"):
        raise SigningError(f"{what} {path}: not a minisign key file")
    return lines[1]


@dataclass(frozen=True)
class SecretKey:
    path: Path
    encrypted: bool


def read_secret_key(path: Path) -> SecretKey:
    raw = _payload(_second_line(path, "secret key"), _SECRET_KEY_BYTES, f"secret key {path}", "secret key")
    kdf = raw[2:4]
    if kdf not in (b"Sc", b"\0\0"):
        raise SigningError(f"secret key {path}: unknown key derivation {kdf!r}")
    return SecretKey(path=path.resolve(), encrypted=kdf == b"Sc")


@dataclass(frozen=True)
class PublicKey:
    argv: tuple[str, ...]
    """How minisign is given the key: ``-p FILE`` or ``-P KEY``."""
    key_id: str


def public_key(path: Path | None = None, text: str | None = None) -> PublicKey:
    """The key from a file (minisign's ``-p``) or given inline (``-P``, the base64 line of the file)."""
    if path is not None:
        line = _second_line(path, "public key")
        raw = _payload(line, _PUBLIC_KEY_BYTES, f"public key {path}", "public key")
        return PublicKey(("-p", str(path.resolve())), _key_id(raw[2:10]))
    if text is None:
        raise SigningError("no public key given")
    raw = _payload(text, _PUBLIC_KEY_BYTES, "-P public key", "public key")
    return PublicKey(("-P", text.strip()), _key_id(raw[2:10]))


def password(password_file: Path | None) -> str | None:
    """--sign-password-file's first line, else $PUENTE_AUDIT_SIGN_PASSWORD, else None (never argv)."""
    if password_file is not None:
        try:
            lines = password_file.read_text().splitlines()
        except OSError as exc:
            raise SigningError(f"password file {password_file}: cannot read it: {exc.strerror}") from exc
        return lines[0] if lines else ""
    return os.environ.get(PASSWORD_ENV)


def check_can_sign(key: SecretKey, secret: str | None) -> None:
    """Refuse before the audit runs what could only fail after it."""
    minisign()
    if key.encrypted and secret is None and not sys.stdin.isatty():
        raise SigningError(
            f"secret key {key.path} is password-protected: give --sign-password-file FILE "
            f"or set {PASSWORD_ENV}"
        )


def trusted_comment(doc: dict[str, Any], signed: str) -> str:
    """One line, signed with the manifest: which run this report is (minisign -V prints it back)."""
    run_, summary = doc.get("run") or {}, doc.get("summary") or {}
    revision = str((run_.get("git") or {}).get("revision", "unknown"))[:12]
    text = (
        f"puente audit of inventory {run_.get('inventory')}, started {run_.get('started')}, "
        f"result {summary.get('status')}, git {revision}, signed {signed}, file {manifest.NAME}"
    )
    return re.sub(r"[\r\n\t]+", " ", text)[:900]


def sign(directory: Path, key: SecretKey, secret: str | None, comment: str) -> Path:
    """``minisign -S`` over DIR/MANIFEST.sha256; the password, if any, goes to minisign's stdin."""
    argv = [minisign(), "-S", "-s", str(key.path), "-m", str(directory / manifest.NAME), "-t", comment]
    interactive = key.encrypted and secret is None  # check_can_sign: stdin is a terminal, minisign asks
    proc = run(
        argv,
        check=False,
        capture=not interactive,
        input_text=None if secret is None or not key.encrypted else secret + "\n",
    )
    target = directory / SIG_NAME
    if proc.returncode != 0 or not target.is_file():
        said = [line for line in _PROGRESS.sub("", proc.stdout or "").splitlines() if line.strip()]
        raise SigningError(
            f"minisign could not sign {directory / manifest.NAME}: "
            f"{said[-1] if said else f'exit {proc.returncode}'}"
        )
    return target


@dataclass
class SignatureCheck:
    key_id: str = ""
    trusted_comment: str = ""
    problems: list[str] = field(default_factory=list)


def verify(directory: Path, key: PublicKey) -> SignatureCheck:
    """Is DIR/MANIFEST.sha256.minisig a valid signature of DIR/MANIFEST.sha256 by ``key``?"""
    check = SignatureCheck(key_id=key.key_id)
    sig = directory / SIG_NAME
    if not sig.is_file():
        check.problems.append(f"{SIG_NAME}: missing: the report is not signed")
        return check
    lines = sig.read_text(errors="replace").splitlines()
    try:
        raw = _payload(lines[1] if len(lines) > 1 else "", _SIGNATURE_BYTES, SIG_NAME, "signature")
    except SigningError as exc:
        check.problems.append(f"{exc} (damaged or replaced)")
        return check
    signer = _key_id(raw[2:10])
    if signer != key.key_id:
        check.problems.append(f"{SIG_NAME}: made by key {signer}, not by the given public key {key.key_id}")
        return check
    proc = run(
        [minisign(), "-V", *key.argv, "-m", str(directory / manifest.NAME), "-x", str(sig)],
        check=False,
        capture=True,
    )
    said = proc.stdout or ""
    if proc.returncode == 0:
        check.trusted_comment = next(
            (
                line.split(":", 1)[1].strip()
                for line in said.splitlines()
                if line.startswith("Trusted comment:")
            ),
            "",
        )
    elif "Comment signature verification failed" in said:
        check.problems.append(f"{SIG_NAME}: its trusted comment was changed after signing")
    elif "Signature verification failed" in said:
        check.problems.append(
            f"{manifest.NAME}: signature does not match: the manifest was changed after "
            "signing (or the signature was damaged)"
        )
    else:
        last = said.strip().splitlines()[-1] if said.strip() else f"exit {proc.returncode}"
        check.problems.append(f"{SIG_NAME}: minisign could not verify it: {last}")
    return check
