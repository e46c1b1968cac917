"""Control metadata: what a test in audit/controls/ means to an auditor.

A control is a pytest-testinfra test function decorated with :func:`control`. The decorator records the
metadata on a ``pytest.mark.control`` marker (so ``-m control`` and ``-k PUENTE-SSH`` select them) and in a
registry that ``puente audit --list`` and the report read. The fields follow Chef InSpec's control DSL
(id, title, impact, desc, refs/tags), the lingua franca auditors already know.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

CONTROL_ID = re.compile(r"^PUENTE-[A-Z0-9]+-\d{2}$")

# Inventory groups a control may name (inventories/*/hosts.yml, docs CONTRACTS): a typo in a control's
# groups would silently make it apply to no host, so an unknown name is an error at import time.
KNOWN_GROUPS = frozenset(
    {
        "all",
        "onprem",
        "cloud",
        "witness",
        "gateways",
        "loadbalancers",
        "api_nodes",
        "postgresql",
        "rabbitmq",
        "dns",
        "etcd",
        "sqs",
        "monitoring",
        "vpn",
        "aws_vpn",
    }
)

# InSpec's impact bands: 0.0 none, <0.4 low, <0.7 medium, <0.9 high, >=0.9 critical.
_SEVERITY_BANDS = ((0.9, "critical"), (0.7, "high"), (0.4, "medium"), (0.01, "low"), (0.0, "none"))
SEVERITIES = ("critical", "high", "medium", "low", "none")


def severity(impact: float) -> str:
    """Map an impact 0.0-1.0 to InSpec's severity names."""
    if not 0.0 <= impact <= 1.0:
        raise ValueError(f"impact must be within 0.0-1.0, got {impact}")
    for floor, name in _SEVERITY_BANDS:
        if impact >= floor:
            return name
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    impact: float
    rationale: str
    refs: Mapping[str, Any]
    groups: Sequence[str]
    remediation: str = ""
    tags: Sequence[str] = field(default_factory=tuple)

    @property
    def severity(self) -> str:
        return severity(self.impact)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = list(self.groups)
        data["tags"] = list(self.tags)
        data["refs"] = {k: list(v) if isinstance(v, list | tuple) else v for k, v in self.refs.items()}
        data["severity"] = self.severity
        return data


REGISTRY: dict[str, Control] = {}
"""Every control imported so far, by id (ids are unique across the catalogue)."""
_WHERE: dict[str, str] = {}


def control(
    *,
    id: str,
    title: str,
    impact: float,
    rationale: str,
    refs: Mapping[str, Any],
    groups: Sequence[str],
    remediation: str = "",
    tags: Sequence[str] = (),
) -> Callable[[F], F]:
    """Declare a test function as an audit control.

    ``refs`` names the benchmark items it maps to, e.g. ``{"cis": "5.2.10", "nist": ["AC-17"]}`` (CIS
    Debian Linux 12 Benchmark v1.1.0 numbering; NIST SP 800-53 rev. 5). ``groups`` are inventory groups (or
    ``all``); the control runs once per host of their union.
    """
    if not CONTROL_ID.match(id):
        raise ValueError(f"control id {id!r} does not match {CONTROL_ID.pattern}")
    unknown = sorted(set(groups) - KNOWN_GROUPS)
    if not groups or unknown:
        raise ValueError(f"control {id}: unknown or empty groups {unknown or groups}")
    if not refs.get("nist"):
        raise ValueError(f"control {id}: refs must name at least one NIST 800-53 control")
    ctl = Control(
        id=id,
        title=title,
        impact=impact,
        rationale=" ".join(rationale.split()),
        refs=dict(refs),
        groups=tuple(groups),
        remediation=" ".join(remediation.split()),
        tags=tuple(tags),
    )
    ctl.severity  # noqa: B018 - validates the impact range now, not at report time

    def decorate(func: F) -> F:
        where = f"{func.__module__}.{func.__qualname__}"
        if _WHERE.setdefault(id, where) != where:
            raise ValueError(f"control id {id} is declared twice ({_WHERE[id]} and {where})")
        REGISTRY[id] = ctl
        func.__puente_control__ = ctl  # type: ignore[attr-defined]
        return pytest.mark.control(ctl)(func)  # type: ignore[no-any-return]

    return decorate


def control_of(obj: Any) -> Control | None:
    """The control a collected test function belongs to, if any."""
    return getattr(obj, "__puente_control__", None)
