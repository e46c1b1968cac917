"""templates/failover/policy.yml's optional `powerdns:` section: validated by the stack, never used by it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from puente_cloud import failover
from puente_cloud.config import ConfigError


def _policy() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(failover.POLICY_FILE.read_text())
    return data


def test_route53_keeps_its_own_values_whatever_powerdns_says() -> None:
    data = _policy()
    data["powerdns"] = {"ttl": 1, "interval_seconds": 1, "timeout_seconds": 1}
    policy = failover.parse(data)
    assert (policy.ttl, policy.interval_seconds) == (
        data["record"]["ttl"],
        data["health_check"]["interval_seconds"],
    )
    assert policy.interval_seconds in (10, 30)


def test_the_section_is_optional() -> None:
    data = _policy()
    data.pop("powerdns", None)
    assert failover.parse(data).record_name == "api"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"ttl": 0.5}, "powerdns.ttl: must be an integer"),
        ({"interval_seconds": 0}, "powerdns.interval_seconds: must be between 1 and 60"),
        ({"timeout_seconds": 0.5}, "powerdns.timeout_seconds: must be an integer"),
        ({"timeout": 1}, "powerdns.timeout: unknown field"),
        ([1], "powerdns: must be a mapping"),
    ],
)
def test_bad_powerdns_values_are_refused(section: Any, expected: str) -> None:
    data = _policy()
    data["powerdns"] = section
    with pytest.raises(ConfigError, match=expected):
        failover.parse(data)
