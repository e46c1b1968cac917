"""Puente's CrossGuard policy pack: `pulumi up --policy-pack policy/` (see docs/CLOUD.md)."""

from puente_policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="puente-guardrails", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
