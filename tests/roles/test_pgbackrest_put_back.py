"""docs/RESTORE.md step 3 without a lab: role pgbackrest's `pgbackrest-put-back` puts rows of any table,
dumped from a restored copy with `\\copy (SELECT * ...) TO STDOUT`, back into a live PostgreSQL 15 next to
what is there. A throwaway server (tests/api/api_servers.py) holds both databases: `restored` (the copy)
and `live` (the damaged one). The lab runs the same script in `puente drill restore`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles" / "pgbackrest" / "files" / "usr" / "local" / "sbin" / "pgbackrest-put-back"

# identity (ALWAYS), a generated column, a second unique key, a child with a foreign key, a quoted name
SCHEMA = """
CREATE TABLE parcels (
    id         uuid PRIMARY KEY,
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    owner      text NOT NULL,
    code       text UNIQUE,
    body       jsonb NOT NULL,
    owner_len  int GENERATED ALWAYS AS (length(owner)) STORED,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE "Parcel Notes" (
    id        uuid PRIMARY KEY,
    parcel_id uuid NOT NULL REFERENCES parcels (id) ON DELETE CASCADE,
    note      text
);
INSERT INTO parcels (id, owner, code, body)
SELECT gen_random_uuid(), CASE WHEN g <= 5 THEN 'ann' ELSE 'bob' END, 'c-' || g, jsonb_build_object('n', g)
FROM generate_series(1, 8) g;
-- notes for ann's first three parcels
INSERT INTO "Parcel Notes" SELECT gen_random_uuid(), id, 'note of ' || code FROM parcels WHERE seq <= 3;
"""


def _servers() -> Any:
    """tests/api's throwaway servers (the same module object when the API tests imported it already)."""
    return load_module(REPO / "tests/api/api_servers.py", register=True)


@pytest.fixture(scope="module")
def dbs() -> Iterator[dict[str, str]]:
    with _servers().postgres() as pg:
        live = pg.create_database("live")
        with psycopg.connect(live, autocommit=True) as conn:
            conn.execute(SCHEMA)
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE restored TEMPLATE live")
        # the damage after the "restore point": ann's parcels deleted (their notes with them), and a new
        # parcel that took the code of one of them
        with psycopg.connect(live, autocommit=True) as conn:
            conn.execute("DELETE FROM parcels WHERE owner = 'ann'")
            conn.execute(
                "INSERT INTO parcels (id, owner, code, body) VALUES (gen_random_uuid(), 'cy', 'c-5', '{}')"
            )
        yield {"live": live, "restored": pg.url("restored")}


def dump(url: str, table: str, where: str) -> str:
    sql = f"\\copy (SELECT * FROM {table} WHERE {where}) TO STDOUT"
    return subprocess.run(["psql", "-XAtq", "-d", url, "-c", sql], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def put_back(url: str, table: str, rows: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), url, table], input=rows, capture_output=True, text=True,
                          check=False)  # fmt: skip


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_rows_go_back_with_their_identity_and_generated_values(dbs: dict[str, str]) -> None:
    out = put_back(dbs["live"], "parcels", dump(dbs["restored"], "parcels", "owner = 'ann'"))
    assert out.returncode == 0, out.stderr
    # five deleted, one of them collides with cy's parcel on `code`: what is there wins
    assert out.stdout.strip() == "4"
    query = (
        "SELECT id, seq, owner, code, body, owner_len, created_at FROM parcels WHERE owner = 'ann' ORDER BY 2"
    )
    restored = rows(dbs["restored"], query)
    assert rows(dbs["live"], query) == [r for r in restored if r[3] != "c-5"]
    assert rows(dbs["live"], "SELECT owner FROM parcels WHERE code = 'c-5'") == [("cy",)]


def test_a_child_table_with_a_quoted_name_goes_back_after_its_parent(dbs: dict[str, str]) -> None:
    where = "parcel_id IN (SELECT id FROM parcels WHERE owner = 'ann')"
    out = put_back(dbs["live"], '"Parcel Notes"', dump(dbs["restored"], '"Parcel Notes"', where))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    query = 'SELECT * FROM "Parcel Notes" ORDER BY id'
    assert rows(dbs["live"], query) == rows(dbs["restored"], query)


def test_a_second_run_puts_nothing_back(dbs: dict[str, str]) -> None:
    out = put_back(dbs["live"], "parcels", dump(dbs["restored"], "parcels", "owner = 'ann'"))
    assert (out.returncode, out.stdout.strip()) == (0, "0"), out.stderr


def test_an_unknown_table_or_a_missing_argument_stops(dbs: dict[str, str]) -> None:
    out = put_back(dbs["live"], "no_such_table", "")
    assert out.returncode != 0 and 'relation "no_such_table" does not exist' in out.stderr
    usage = subprocess.run(["sh", str(SCRIPT), dbs["live"]], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage:" in usage.stderr
