"""Fixtures of the audit tests (machinery: no lab; acceptance: marked `lab`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from audit_synthetic import Synthetic, make_synthetic


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    return make_synthetic(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def synthetic_run(synthetic: Synthetic) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One `puente audit` run of the synthetic catalogue, its waiver active (shared by the report tests)."""
    out = synthetic.root / "report"
    return synthetic.audit(out, "--today", "2029-12-31"), out
