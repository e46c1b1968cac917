"""The fixtures a control uses: ``host`` (pytest-testinfra's host, recording evidence) and ``evidence``.

Registered by puente.audit.plugin at configure time, i.e. after pytest-testinfra's own plugin, so this
``host`` is the one controls get.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from puente.audit.evidence import EvidenceHost, Recorder
from puente.audit.inventory import Inventory

if TYPE_CHECKING:
    from puente.audit.plugin import AuditState

STATE = pytest.StashKey["AuditState"]()
EVIDENCE = pytest.StashKey[Recorder]()
TARGET = "_audit_target"


@pytest.fixture
def _audit_target() -> str:
    raise pytest.UsageError("the `host` fixture of puente.audit is only for @control tests")


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Recorder:
    """What the control looked at; ``evidence.record(what, output)`` adds a finding of its own."""
    recorder = Recorder()
    request.node.stash[EVIDENCE] = recorder
    return recorder


@pytest.fixture
def audit_inventory(request: pytest.FixtureRequest) -> Inventory:
    """The inventory the audit runs against: a control that checks something about every host (the
    monitoring control: each node's exporter is scraped) reads the list of hosts here."""
    state: AuditState = request.config.stash[STATE]
    assert state.inventory is not None
    return state.inventory


@pytest.fixture
def host(_audit_target: str, evidence: Recorder, request: pytest.FixtureRequest) -> EvidenceHost:
    """pytest-testinfra's host for the inventory host this control runs on, recording evidence."""
    state: AuditState = request.config.stash[STATE]
    assert state.inventory is not None
    raw = state.connect(_audit_target)
    return EvidenceHost(
        raw,
        _audit_target,
        state.inventory.groups_of[_audit_target],
        evidence,
        cache=state.snapshots.setdefault(_audit_target, {}),
    )
