"""The site groups every part of Puente knows: a top-level inventory group with one of these names is a
failure domain (the audit's evidence, the preflight's quorum rules)."""

from __future__ import annotations

SITES = ("onprem", "cloud", "witness")
