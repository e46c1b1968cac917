"""Ordered migrations: a database made by the release before numbered migrations (schema.sql applied
whole, recorded by its hash in schema_versions), and one made by the release before API keys (0001
only), are upgraded by the numbered migrations, an ALTER included, each applied once."""

from __future__ import annotations

import hashlib
import shutil
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from api_helpers import make_env
from api_servers import Postgres
from puente_api import db
from puente_api import settings as settings_mod

SHIPPED = Path(str(resources.files("puente_api.db").joinpath("migrations")))
ALTER = "ALTER TABLE shipments ADD COLUMN carrier TEXT NOT NULL DEFAULT 'puente-post';\n"
SHIPPED_NAMES = [f"{m.version:04d}_{m.name}" for m in db.migrations()]
NEXT = f"{len(SHIPPED_NAMES) + 1:04d}_shipment_carrier"


def _previous_release(url: str) -> None:
    """What `puente-api migrate` did before numbered migrations: the whole schema.sql (now 0001) in one
    transaction, recorded by its hash."""
    sql = (SHIPPED / "0001_initial.sql").read_text()
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions ("
            " version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.execute(sql)  # type: ignore[arg-type]
        conn.execute(
            "INSERT INTO schema_versions VALUES (%s)", (hashlib.sha256(sql.encode()).hexdigest()[:16],)
        )
        conn.execute(
            "INSERT INTO shipments (id, client_id, status, sender, recipient, parcels, service, created_at)"
            " VALUES (gen_random_uuid(), 'old-client', 'created', '{}', '{}', '[]', 'standard', now())"
        )


def _next_release(tmp_path: Path) -> Path:
    """The shipped migrations plus a new one that must apply on an existing database."""
    directory = tmp_path / "migrations"
    shutil.copytree(SHIPPED, directory)
    (directory / f"{NEXT}.sql").write_text(ALTER)
    return directory


@pytest.fixture
def database(pg: Postgres, request: pytest.FixtureRequest) -> tuple[str, settings_mod.Settings]:
    url = pg.create_database(f"migrations_{request.node.name[-20:].lower()}")
    return url, settings_mod.load(make_env(url, "amqp://guest@127.0.0.1:5672/%2F"))


def test_a_database_of_the_previous_release_is_upgraded_in_order(
    database: tuple[str, settings_mod.Settings], tmp_path: Path
) -> None:
    url, cfg = database
    _previous_release(url)
    directory = _next_release(tmp_path)
    assert db.migrate(cfg, directory) == [*SHIPPED_NAMES, NEXT]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT carrier FROM shipments WHERE client_id = 'old-client'").fetchone() == (
            "puente-post",
        )
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows[0] == (1, "initial") and rows[-1] == (len(SHIPPED_NAMES) + 1, "shipment_carrier")
    assert len(rows) == len(SHIPPED_NAMES) + 1
    assert db.migrate(cfg, directory) == []  # each applied once


def test_an_applied_migration_that_changed_is_refused(
    database: tuple[str, settings_mod.Settings], tmp_path: Path
) -> None:
    _, cfg = database
    directory = _next_release(tmp_path)
    db.migrate(cfg, directory)
    (directory / f"{NEXT}.sql").write_text(ALTER.replace("puente-post", "other"))
    with pytest.raises(RuntimeError, match=f"{NEXT} was changed after it was applied"):
        db.migrate(cfg, directory)


def test_numbering_has_no_gaps(tmp_path: Path) -> None:
    directory = _next_release(tmp_path)
    gap = f"{len(SHIPPED_NAMES) + 2:04d}_shipment_carrier.sql"
    (directory / f"{NEXT}.sql").rename(directory / gap)
    with pytest.raises(RuntimeError, match="without gaps"):
        db.migrations(directory)


def test_api_keys_apply_on_a_database_of_the_release_before_them(
    database: tuple[str, settings_mod.Settings], tmp_path: Path
) -> None:
    """The release before API keys migrated 0001 only: 0002 adds the keys table (and the shipments'
    per-client index) to it, its shipments kept; a key made then names their client."""
    from puente_api import apikeys

    url, cfg = database
    before = tmp_path / "before"
    before.mkdir()
    shutil.copy(SHIPPED / "0001_initial.sql", before)
    assert db.migrate(cfg, before) == ["0001_initial"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO shipments (id, client_id, sender, recipient, parcels, service)"
            " VALUES (gen_random_uuid(), 'shop-1', '{}', '{}', '[]', 'standard')"
        )
    assert db.migrate(cfg) == ["0002_api_keys", "0003_label_failed"]
    assert db.migrate(cfg) == []
    with psycopg.connect(url, autocommit=True) as conn:
        key = apikeys.create(conn, "shop-1", "after the upgrade")
        found = conn.execute(
            "SELECT count(*) FROM shipments s JOIN api_keys k ON k.client_id = s.client_id"
            " WHERE k.key_id = %s",
            (key.key_id,),
        ).fetchone()
        assert found == (1,)
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'shipments'")
        }
        assert "shipments_client_id_seq" in indexes
        with pytest.raises(psycopg.errors.CheckViolation):  # the table holds the client id rule too
            conn.execute(
                "INSERT INTO api_keys (key_id, client_id, token_sha256) VALUES ('Abcdefgh', 'a b', %s)",
                (b"x" * 32,),
            )


def test_label_failed_applies_on_a_database_of_the_release_before_it(
    database: tuple[str, settings_mod.Settings], tmp_path: Path
) -> None:
    """0003 widens label_status to 'failed' and adds the reason on a database holding shipments; before
    it 'failed' is refused, after it a reason longer than 500 characters is."""
    url, cfg = database
    before = tmp_path / "before"
    before.mkdir()
    for name in ("0001_initial.sql", "0002_api_keys.sql"):
        shutil.copy(SHIPPED / name, before)
    assert db.migrate(cfg, before) == ["0001_initial", "0002_api_keys"]
    insert = (
        "INSERT INTO shipments (id, client_id, sender, recipient, parcels, service, label_status)"
        " VALUES (gen_random_uuid(), 'shop-1', '{}', '{}', '[]', 'standard', %s) RETURNING id"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(insert, ("ready",))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, ("failed",))
    assert db.migrate(cfg) == ["0003_label_failed"]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(insert, ("failed",)).fetchone()
        assert row is not None
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE shipments SET label_failure_reason = repeat('x', 501) WHERE id = %s", row)
        assert conn.execute(
            "SELECT label_status, count(*) FROM shipments GROUP BY 1 ORDER BY 1"
        ).fetchall() == [
            ("failed", 1),
            ("ready", 1),
        ]
