"""templates/failover/policy.yml: load and validate the one failover DNS policy (shared with PowerDNS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError

POLICY_FILE = Path(__file__).resolve().parents[2] / "templates" / "failover" / "policy.yml"
_SCHEMA: dict[str, set[str]] = {
    "record": {"name", "type", "ttl"},
    "health_check": {"protocol", "port", "path", "interval_seconds", "failure_threshold", "timeout_seconds"},
    "primary": {"site", "role"},
    "secondary": {"site", "role"},
}
# Optional: values for PowerDNS only (the lab's failover DNS has no Route 53 minimums). Validated here so
# a typo fails the stack too, never used by it: Route 53 keeps record.ttl and health_check.interval_seconds.
_OPTIONAL: dict[str, set[str]] = {"powerdns": {"ttl", "interval_seconds", "timeout_seconds"}}


@dataclass(frozen=True)
class FailoverPolicy:
    record_name: str
    record_type: str
    ttl: int
    protocol: str
    port: int
    path: str
    interval_seconds: int
    failure_threshold: int
    timeout_seconds: int
    primary: tuple[str, str]
    secondary: tuple[str, str]

    @property
    def route53_type(self) -> str:
        return self.protocol.upper()


def _int(problems: list[str], where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where}: must be an integer, got {value!r}")
        return lo
    if not lo <= value <= hi:
        problems.append(f"{where}: must be between {lo} and {hi}, got {value}")
    return value


def parse(data: Any, source: str = str(POLICY_FILE)) -> FailoverPolicy:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: must be a mapping"])
    for extra in sorted(set(data) - set(_SCHEMA) - set(_OPTIONAL)):
        problems.append(f"{source}: {extra}: unknown section")
    sections: dict[str, dict[str, Any]] = {}
    for name, fields in _SCHEMA.items():
        section = data.get(name)
        if not isinstance(section, dict):
            problems.append(f"{source}: {name}: section is required")
            section = {}
        for missing in sorted(fields - set(section)):
            problems.append(f"{source}: {name}.{missing}: is required")
        for extra in sorted(set(section) - fields):
            problems.append(f"{source}: {name}.{extra}: unknown field")
        sections[name] = section
    for name, fields in _OPTIONAL.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            problems.append(f"{source}: {name}: must be a mapping")
            continue
        for extra in sorted(set(section) - fields):
            problems.append(f"{source}: {name}.{extra}: unknown field")
        if "ttl" in section:
            _int(problems, f"{source}: {name}.ttl", section["ttl"], 1, 86400)
        if "interval_seconds" in section:
            _int(problems, f"{source}: {name}.interval_seconds", section["interval_seconds"], 1, 60)
        if "timeout_seconds" in section:
            # integer, as health_check.timeout_seconds: PowerDNS reads a fraction as no timeout at all
            _int(problems, f"{source}: {name}.timeout_seconds", section["timeout_seconds"], 1, 10)
    rec, hc = sections["record"], sections["health_check"]
    if rec.get("type", "A") != "A":
        problems.append(f"{source}: record.type: only A is supported, got {rec.get('type')!r}")
    if hc.get("protocol") not in ("http", "https"):
        problems.append(f"{source}: health_check.protocol: must be http or https, got {hc.get('protocol')!r}")
    if not str(hc.get("path", "")).startswith("/"):
        problems.append(f"{source}: health_check.path: must start with /")
    interval = _int(problems, f"{source}: health_check.interval_seconds", hc.get("interval_seconds"), 10, 30)
    if interval not in (10, 30):
        problems.append(f"{source}: health_check.interval_seconds: Route 53 accepts 10 or 30, got {interval}")
    policy = FailoverPolicy(
        record_name=str(rec.get("name", "")),
        record_type="A",
        ttl=_int(problems, f"{source}: record.ttl", rec.get("ttl"), 1, 86400),
        protocol=str(hc.get("protocol", "https")),
        port=_int(problems, f"{source}: health_check.port", hc.get("port"), 1, 65535),
        path=str(hc.get("path", "/")),
        interval_seconds=interval,
        failure_threshold=_int(
            problems, f"{source}: health_check.failure_threshold", hc.get("failure_threshold"), 1, 10
        ),
        # Integer by contract: PowerDNS reads a fraction as 0 = no timeout.
        timeout_seconds=_int(
            problems, f"{source}: health_check.timeout_seconds", hc.get("timeout_seconds"), 1, 2
        ),
        primary=(str(sections["primary"].get("site")), str(sections["primary"].get("role"))),
        secondary=(str(sections["secondary"].get("site")), str(sections["secondary"].get("role"))),
    )
    if policy.primary != ("onprem", "gateway") or policy.secondary != ("cloud", "edge"):
        problems.append(
            f"{source}: primary/secondary: this program serves PRIMARY=onprem gateway, "
            f"SECONDARY=cloud edge; got {policy.primary} / {policy.secondary}"
        )
    if problems:
        raise ConfigError(problems)
    return policy


def load(path: Path = POLICY_FILE) -> FailoverPolicy:
    return parse(yaml.safe_load(path.read_text()), str(path))
