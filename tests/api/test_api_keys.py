"""`puente-api keys create|list|revoke|rotate`, run as the console script an operator (or the `puente
keys` wrapper) runs: what it prints, what it stores, and exit code 2 on bad input."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
import uuid

import httpx
import psycopg
import pytest
from api_helpers import API_EXE
from api_servers import APIServer
from puente_api import auth

TOKEN = re.compile(r"^pk_([A-Za-z0-9]{8})_[A-Za-z0-9]{43}$")


def keys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [API_EXE, "keys", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def new_client() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def created(r: subprocess.CompletedProcess[str], client_id: str) -> tuple[str, str]:
    """(key id, token) from `keys create|rotate`'s output: the token is the last line, the key id above."""
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    match = TOKEN.match(lines[-1])
    assert match, r.stdout
    assert lines[-2] == f"key_id: {match[1]}"
    assert lines[-3] == f"client_id: {client_id}"
    return match[1], lines[-1]


def status(api: APIServer, token: str) -> int:
    r = httpx.get(f"{api.base_url}/v1/shipments", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return r.status_code


def test_create_prints_the_token_last_and_stores_only_its_hash(
    api_env: dict[str, str], api: APIServer, db: psycopg.Connection
) -> None:
    client_id = new_client()
    key_id, token = created(keys(api_env, "create", client_id, "--label", "shop checkout"), client_id)
    row = db.execute(
        "SELECT client_id, token_sha256, label FROM api_keys WHERE key_id = %s", (key_id,)
    ).fetchone()
    assert row == (client_id, hashlib.sha256(token.encode()).digest(), "shop checkout")
    assert status(api, token) == 200


def test_list_shows_keys_never_their_secrets(api_env: dict[str, str]) -> None:
    client_id = new_client()
    key_id, token = created(keys(api_env, "create", client_id), client_id)
    other_id, _ = created(keys(api_env, "create", client_id, "--label", "second"), client_id)
    listed = keys(api_env, "list", "--client", client_id)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["KEY_ID", "CLIENT_ID", "STATUS", "CREATED_AT", "REVOKED_AT", "LABEL"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [key_id, client_id, "active"],
        [other_id, client_id, "active"],
    ]
    secret = token.rsplit("_", 1)[1]
    everything = keys(api_env, "list").stdout
    assert key_id in everything
    for leak in (token, secret, hashlib.sha256(token.encode()).hexdigest()):
        assert leak not in listed.stdout + listed.stderr and leak not in everything


def test_revoke_refuses_the_key_and_says_so_twice(api_env: dict[str, str], api: APIServer) -> None:
    client_id = new_client()
    key_id, token = created(keys(api_env, "create", client_id), client_id)
    assert status(api, token) == 200
    r = keys(api_env, "revoke", key_id)
    assert r.returncode == 0 and r.stdout.startswith(f"revoked: {key_id} client_id={client_id} at="), r
    again = keys(api_env, "revoke", key_id)
    assert again.returncode == 0 and again.stdout.startswith(f"already revoked: {key_id}"), again
    assert keys(api_env, "list", "--client", client_id).stdout.splitlines()[1].split()[2] == "revoked"
    time.sleep(auth.CACHE_TTL_SECONDS + 0.2)  # past the API's cache TTL since the revocation committed
    assert status(api, token) == 401


def test_rotate_makes_a_new_key_and_revokes_the_old_one(api_env: dict[str, str], api: APIServer) -> None:
    client_id = new_client()
    old_id, old_token = created(keys(api_env, "create", client_id, "--label", "pos"), client_id)
    assert status(api, old_token) == 200
    r = keys(api_env, "rotate", old_id)
    new_id, new_token = created(r, client_id)
    assert new_id != old_id
    assert r.stdout.splitlines()[0].startswith(f"revoked: {old_id} client_id={client_id} at=")
    assert status(api, new_token) == 200
    listed = {
        line.split()[0]: line.split()
        for line in keys(api_env, "list", "--client", client_id).stdout.splitlines()[1:]
    }
    assert listed[old_id][2] == "revoked" and listed[new_id][2] == "active" and listed[new_id][-1] == "pos"
    time.sleep(auth.CACHE_TTL_SECONDS + 0.2)
    assert status(api, old_token) == 401


def test_rotate_with_a_grace_period_keeps_the_old_key_until_then(
    api_env: dict[str, str], api: APIServer, db: psycopg.Connection
) -> None:
    client_id = new_client()
    old_id, old_token = created(keys(api_env, "create", client_id), client_id)
    r = keys(api_env, "rotate", old_id, "--expire-old-in", "3600")
    _, new_token = created(r, client_id)
    assert r.stdout.splitlines()[0].startswith(f"expires: {old_id} client_id={client_id} at=")
    assert status(api, old_token) == status(api, new_token) == 200
    left = db.execute(
        "SELECT extract(epoch FROM revoked_at - now()) FROM api_keys WHERE key_id = %s", (old_id,)
    ).fetchone()
    assert left is not None and 3500 < float(left[0]) <= 3600
    listed = keys(api_env, "list", "--client", client_id).stdout
    assert f"{old_id}  {client_id}  expiring" in listed
    # revoking it cuts the grace period short
    assert keys(api_env, "revoke", old_id).stdout.startswith(f"revoked: {old_id}")
    time.sleep(auth.CACHE_TTL_SECONDS + 0.2)
    assert status(api, old_token) == 401 and status(api, new_token) == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "no spaces allowed"), "a client id is 1 to 64 of"),
        (("create", "x" * 65), "a client id is 1 to 64 of"),
        (("create", "shop-1", "--label", "x" * 201), "a label is at most 200"),
        (("list", "--client", "bad/client"), "a client id is 1 to 64 of"),
        (("revoke", "Nosuch01"), "no API key with id 'Nosuch01'"),
        (("revoke", "not-a-key-id"), "a key id is 8 letters or digits"),
        (("rotate", "Nosuch01"), "no API key with id 'Nosuch01'"),
        (("rotate", "Nosuch01", "--expire-old-in", "-1"), "--expire-old-in is 0 to 604800 seconds"),
        (("rotate", "Nosuch01", "--expire-old-in", "soon"), "invalid int value"),
        (("create",), "the following arguments are required: CLIENT"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    api_env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    r = keys(api_env, *args)
    assert r.returncode == 2, r
    assert message in r.stderr and r.stdout == ""


def test_a_revoked_key_cannot_be_rotated(api_env: dict[str, str]) -> None:
    client_id = new_client()
    key_id, _ = created(keys(api_env, "create", client_id), client_id)
    assert keys(api_env, "revoke", key_id).returncode == 0
    r = keys(api_env, "rotate", key_id)
    assert (
        r.returncode == 2
        and f"API key {key_id} is revoked; create a new key for client {client_id}" in r.stderr
    )
