"""Filter of role monitoring: Puente's rules file as one inventory wants it.

``monitoring_rule_ranges`` maps an alert's name to the range its expression looks back over, e.g.
``{PuenteDatabaseLeaderChanged: 30s}``: an alert about an event ("changed in the last 5 minutes") stays
firing as long as its range, and the right range follows the scrape interval (it must hold a few
scrapes). Production keeps the file's ranges (``{}``: the file is deployed as it is); the lab, which
scrapes every 10 s, shortens them so a drill sees the alert resolve within a minute. Tested in
tests/monitoring/test_monitoring_rules_filter.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

# Prometheus durations (https://prometheus.io/docs/prometheus/2.42/querying/basics/#time-durations)
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
# A range selector's brackets: `[5m]`; subqueries (`[5m:1m]`) are left alone and refused below.
_RANGE = re.compile(r"\[([0-9]+(?:ms|s|m|h|d|w|y))+\]")
_SUBQUERY = re.compile(r"\[[0-9a-z]*:[0-9a-z]*\]")


def _alerts(doc: Any) -> dict[str, dict[str, Any]]:
    try:
        return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"monitoring_rule_ranges: not a Prometheus rules file ({exc})") from exc


def monitoring_rule_ranges(text: str, ranges: Mapping[str, str] | None) -> str:
    """``text`` (a rules file) with every range selector of each named alert's ``expr`` set to its
    duration; the text unchanged when ``ranges`` is empty. Unknown alerts, bad durations and
    expressions without a range (or with a subquery) are refused, never ignored."""
    body = text if text.endswith("\n") else text + "\n"
    if not ranges:
        return body
    if not isinstance(ranges, Mapping):
        raise AnsibleFilterError(f"monitoring_rule_ranges: expected alert name -> duration, got {ranges!r}")
    doc = yaml.safe_load(body)
    alerts = _alerts(doc)
    for name, duration in sorted(ranges.items()):
        if name not in alerts:
            raise AnsibleFilterError(f"monitoring_rule_ranges: no alert {name!r} (alerts: {sorted(alerts)})")
        if not isinstance(duration, str) or not _DURATION.match(duration):
            raise AnsibleFilterError(f"monitoring_rule_ranges: {name}: {duration!r} is not a duration")
        expr = str(alerts[name]["expr"])
        if _SUBQUERY.search(expr):
            raise AnsibleFilterError(f"monitoring_rule_ranges: {name}: subqueries are not supported")
        new, found = _RANGE.subn(f"[{duration}]", expr)
        if not found:
            raise AnsibleFilterError(f"monitoring_rule_ranges: {name}: its expression has no range: {expr}")
        alerts[name]["expr"] = new
    changed = ", ".join(f"{k}: {v}" for k, v in sorted(ranges.items()))
    header = (
        "# Puente's alert rules (roles/monitoring/files/rules/puente.rules.yml, where the comments are),\n"
        f"# with the ranges this inventory sets (monitoring_rule_ranges): {changed}.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=110, allow_unicode=True)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"monitoring_rule_ranges": monitoring_rule_ranges}
