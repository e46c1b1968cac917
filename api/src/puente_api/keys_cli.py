"""``puente-api keys create|list|revoke|rotate``: API key management, on the database the settings name
(``PUENTE_DATABASE_URL``, as ``puente-api migrate``). Output on stdout, made to be read by people and
by scripts alike:

* ``create CLIENT [--label L]`` prints ``client_id: CLIENT``, ``key_id: KEYID`` and, as its LAST line,
  the token (``pk_KEYID_SECRET``): shown this once, only its SHA-256 is stored;
* ``rotate KEY_ID [--expire-old-in SECONDS]`` prints the old key's line (``revoked: ...`` or
  ``expires: ...``), then the same three lines as ``create`` for the new key;
* ``list [--client C]`` prints one line per key (id, client, status, created, revoked/expires, label),
  never a token or a hash;
* ``revoke KEY_ID`` prints ``revoked: KEYID client_id=C at=T`` (or ``already revoked: ...``).

Bad input (an unknown key id, a malformed client id, a revoked key to rotate) ends with exit code 2 and a
sentence on stderr; a database that cannot be reached with exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TextIO

import psycopg

from puente_api import apikeys, db
from puente_api.settings import Settings


def _ts(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else "-"


def _print_new(key: apikeys.NewKey, out: TextIO) -> None:
    print(f"client_id: {key.client_id}", file=out)
    print(f"key_id: {key.key_id}", file=out)
    print(key.token, file=out)  # the last line, always


def create(cfg: Settings, client_id: str, label: str | None, out: TextIO) -> apikeys.NewKey:
    apikeys.check_client_id(client_id)  # bad input is refused before connecting
    apikeys.check_label(label)
    with db.connect(cfg) as conn:
        key = apikeys.create(conn, client_id, label)
    _print_new(key, out)
    return key


def list_keys(cfg: Settings, client_id: str | None, out: TextIO) -> list[apikeys.KeyInfo]:
    if client_id is not None:
        apikeys.check_client_id(client_id)
    with db.connect(cfg) as conn:
        keys = apikeys.list_keys(conn, client_id)
    rows = [("KEY_ID", "CLIENT_ID", "STATUS", "CREATED_AT", "REVOKED_AT", "LABEL")]
    for k in keys:
        status = "revoked" if not k.active else ("expiring" if k.revoked_at else "active")
        rows.append((k.key_id, k.client_id, status, _ts(k.created_at), _ts(k.revoked_at), k.label or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]), file=out)
    return keys


def revoke(cfg: Settings, key_id: str, out: TextIO) -> apikeys.KeyInfo:
    apikeys.check_key_id(key_id)
    with db.connect(cfg) as conn:
        key, changed = apikeys.revoke(conn, key_id)
    word = "revoked" if changed else "already revoked"
    print(f"{word}: {key.key_id} client_id={key.client_id} at={_ts(key.revoked_at)}", file=out)
    return key


def rotate(cfg: Settings, key_id: str, expire_old_in: int, out: TextIO) -> apikeys.NewKey:
    apikeys.check_key_id(key_id)
    apikeys.check_expire_old_in(expire_old_in)
    with db.connect(cfg) as conn:
        new, old = apikeys.rotate(conn, key_id, expire_old_in)
    word = "expires" if old.active else "revoked"
    print(f"{word}: {old.key_id} client_id={old.client_id} at={_ts(old.revoked_at)}", file=out)
    _print_new(new, out)
    return new


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="manage API keys (create, list, revoke, rotate)")
    keys.set_defaults(func=run)
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("create", help="a new key for CLIENT; prints the token, once, as the last line")
    p.add_argument("client_id", metavar="CLIENT")
    p.add_argument("--label", help="a note shown by `keys list` (at most 200 characters)")
    p = actions.add_parser("list", help="the keys (never their tokens), all or one client's")
    p.add_argument("--client", dest="client_id", metavar="CLIENT")
    p = actions.add_parser("revoke", help="refuse KEY_ID from now on (every API node within 2 s)")
    p.add_argument("key_id", metavar="KEY_ID")
    p = actions.add_parser("rotate", help="a new key for KEY_ID's client; the old one is revoked")
    p.add_argument("key_id", metavar="KEY_ID")
    p.add_argument(
        "--expire-old-in",
        type=int,
        default=0,
        metavar="SECONDS",
        help="keep the old key working this long (default 0: revoked at once; at most 7 days)",
    )


def run(args: argparse.Namespace, cfg: Settings) -> int:
    out = sys.stdout
    try:
        if args.action == "create":
            create(cfg, args.client_id, args.label, out)
        elif args.action == "list":
            list_keys(cfg, args.client_id, out)
        elif args.action == "revoke":
            revoke(cfg, args.key_id, out)
        else:
            rotate(cfg, args.key_id, args.expire_old_in, out)
    except apikeys.KeyProblem as exc:
        print(f"puente-api keys {args.action}: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(f"puente-api keys {args.action}: database unreachable: {exc}", file=sys.stderr)
        return 1
    return 0
