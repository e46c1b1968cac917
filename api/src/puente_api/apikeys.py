"""API keys: the token format, its hash, and the ``api_keys`` table (migration 0002).

A key is the token ``pk_<key id>_<secret>`` (Stripe's shape): the key id is 8 base62 characters, public
(``keys list``, ``revoke`` and ``rotate`` name a key by it); the secret is 43 base62 characters drawn
with :mod:`secrets` (256 bits). Only the SHA-256 of the whole token is stored: the secret is random and
long, so a fast hash is the right one (nothing to brute-force, and a look-up is one index probe), and a
stolen table holds no usable key. The token is shown once, by ``puente-api keys create|rotate``.

``revoked_at``: NULL while the key is valid; a time in the past once revoked; a time in the future while
a rotated key's grace period runs (``keys rotate --expire-old-in``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

PREFIX = "pk_"
KEY_ID_LENGTH = 8
SECRET_LENGTH = 43  # base62: 43 x log2(62) = 256.03 bits
_ALPHABET = string.ascii_letters + string.digits
# What a token looks like (checked before any hashing or look-up: a malformed one costs nothing).
TOKEN = re.compile(f"^pk_[A-Za-z0-9]{{{KEY_ID_LENGTH}}}_[A-Za-z0-9]{{{SECRET_LENGTH}}}$".encode())
KEY_ID = re.compile(f"^[A-Za-z0-9]{{{KEY_ID_LENGTH}}}$")
# The identity a key stands for: the scope of its shipments and idempotency keys.
CLIENT_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
CLIENT_ID = re.compile(CLIENT_PATTERN)
LABEL_MAX_LENGTH = 200
# Longest grace period of a rotated key (Stripe's is up to 7 days too).
MAX_EXPIRE_OLD_IN = 7 * 86400


class KeyProblem(ValueError):
    """A key operation cannot be done as asked (unknown key id, bad client id, ...): the message says why."""


@dataclass(frozen=True)
class NewKey:
    key_id: str
    client_id: str
    token: str  # shown once, never stored


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    client_id: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    active: bool


def digest(token: bytes) -> bytes:
    """What the table stores and the API looks up: SHA-256 of the whole token."""
    return hashlib.sha256(token).digest()


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def check_client_id(client_id: str) -> str:
    if not CLIENT_ID.match(client_id):
        raise KeyProblem(f"a client id is 1 to 64 of A-Z a-z 0-9 . _ : - (got {client_id!r})")
    return client_id


def check_key_id(key_id: str) -> str:
    if not KEY_ID.match(key_id):
        raise KeyProblem(f"a key id is {KEY_ID_LENGTH} letters or digits (got {key_id!r})")
    return key_id


def check_expire_old_in(seconds: int) -> int:
    if not 0 <= seconds <= MAX_EXPIRE_OLD_IN:
        raise KeyProblem(f"--expire-old-in is 0 to {MAX_EXPIRE_OLD_IN} seconds (got {seconds})")
    return seconds


def check_label(label: str | None) -> str | None:
    if label is not None and (len(label) > LABEL_MAX_LENGTH or not label.isprintable()):
        raise KeyProblem(f"a label is at most {LABEL_MAX_LENGTH} printable characters")
    return label


_INSERT = """
INSERT INTO api_keys (key_id, client_id, token_sha256, label) VALUES (%s, %s, %s, %s)
ON CONFLICT (key_id) DO NOTHING
"""
_COLUMNS = "key_id, client_id, label, created_at, revoked_at, revoked_at IS NULL OR revoked_at > now()"


def _insert(conn: psycopg.Connection[Any], client_id: str, label: str | None) -> NewKey:
    while True:  # a key id already taken (1 in 2e14 per existing key): draw another
        key_id = _random(KEY_ID_LENGTH)
        token = f"{PREFIX}{key_id}_{_random(SECRET_LENGTH)}"
        if conn.execute(_INSERT, (key_id, client_id, digest(token.encode()), label)).rowcount == 1:
            return NewKey(key_id, client_id, token)


def create(conn: psycopg.Connection[Any], client_id: str, label: str | None = None) -> NewKey:
    return _insert(conn, check_client_id(client_id), check_label(label))


def list_keys(conn: psycopg.Connection[Any], client_id: str | None = None) -> list[KeyInfo]:
    where, params = ("WHERE client_id = %s", (check_client_id(client_id),)) if client_id else ("", ())
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY client_id, created_at", params)
    return [KeyInfo(*row) for row in rows]


def _locked(conn: psycopg.Connection[Any], key_id: str) -> KeyInfo:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = %s FOR UPDATE", (check_key_id(key_id),)
    ).fetchone()
    if row is None:
        raise KeyProblem(f"no API key with id {key_id!r}")
    return KeyInfo(*row)


def revoke(conn: psycopg.Connection[Any], key_id: str) -> tuple[KeyInfo, bool]:
    """Revoke now (a grace period still running included). Returns the key as it is afterwards and
    whether this call revoked it (False: it already was)."""
    with conn.transaction():
        key = _locked(conn, key_id)
        if not key.active:
            return key, False
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = %s", (key_id,))
        return _locked(conn, key_id), True


def rotate(conn: psycopg.Connection[Any], key_id: str, expire_old_in: int = 0) -> tuple[NewKey, KeyInfo]:
    """A new key for the same client (and label); the old one stops working ``expire_old_in`` seconds
    from now (0: at once). One transaction: never two valid keys without the new one being stored."""
    check_expire_old_in(expire_old_in)
    with conn.transaction():
        old = _locked(conn, key_id)
        if not old.active:
            raise KeyProblem(f"API key {key_id} is revoked; create a new key for client {old.client_id}")
        new = _insert(conn, old.client_id, old.label)
        conn.execute(
            "UPDATE api_keys SET revoked_at = LEAST(coalesce(revoked_at, 'infinity'),"
            " now() + make_interval(secs => %s)) WHERE key_id = %s",
            (expire_old_in, key_id),
        )
        return new, _locked(conn, key_id)


_FIND = (
    "SELECT client_id, key_id FROM api_keys"
    " WHERE token_sha256 = %s AND (revoked_at IS NULL OR revoked_at > now())"
)


async def find(conn: psycopg.AsyncConnection[Any], token_sha256: bytes) -> tuple[str, str] | None:
    """(client id, key id) of the valid key with this hash, or None (unknown or revoked)."""
    cur = await conn.execute(_FIND, (token_sha256,))
    row = await cur.fetchone()
    return None if row is None else (row[0], row[1])
