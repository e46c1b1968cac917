"""What the app holds for its lifetime (built by the lifespan in app.py)."""

from __future__ import annotations

from dataclasses import dataclass

from puente_api import db
from puente_api.readiness import Readiness
from puente_api.settings import Settings


@dataclass
class AppState:
    settings: Settings
    pool: db.Pool
    readiness: Readiness
    # Reads (GET routes): the read pool, or the write pool itself when no read URL is set.
    read_pool: db.Pool
