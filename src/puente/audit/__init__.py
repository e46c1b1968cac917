"""Auditor reports from pytest-testinfra: control catalogue, evidence, waivers, reports, drift.

Controls live in audit/controls/ and are declared with :func:`control`; ``puente audit`` runs them
(see docs/AUDIT.md).
"""

from puente.audit.catalogue import Control, control, severity

__all__ = ["Control", "control", "severity"]
