"""Filters of role monitoring: Puente's rules file as one inventory wants it.

``monitoring_rule_ranges`` maps an alert's name to the range its expression looks back over, e.g.
``{PuenteDatabaseLeaderChanged: 30s}``: an alert about an event ("changed in the last 5 minutes") stays
firing as long as its range, and the right range follows the scrape interval (it must hold a few
scrapes). Production keeps the file's ranges (``{}``: the file is deployed as it is); the lab, which
scrapes every 10 s, shortens them so a drill sees the alert resolve within a minute.

``monitoring_rule_holds`` maps an alert's name to its ``for:`` (how long its condition must hold before
it fires), e.g. ``{PuenteSiteDown: 0s}``: the lab's drills must see a site down within 30 s of the cut,
which a failed scrape (interval + timeout) plus the file's hold leaves no margin for. Tested in
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


def _alerts(doc: Any, name: str) -> dict[str, dict[str, Any]]:
    try:
        return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"{name}: not a Prometheus rules file ({exc})") from exc


def _rewrite(text: str, mapping: Mapping[str, str] | None, name: str, edit: Any) -> str:
    """``text`` with ``edit(alert_rule, duration)`` applied to each alert named in ``mapping``, under a
    header saying what changed; the text unchanged when ``mapping`` is empty."""
    body = text if text.endswith("\n") else text + "\n"
    if not mapping:
        return body
    if not isinstance(mapping, Mapping):
        raise AnsibleFilterError(f"{name}: expected alert name -> duration, got {mapping!r}")
    lines = [line for line in body.splitlines() if line.startswith("# with the ")]
    doc = yaml.safe_load(body)
    alerts = _alerts(doc, name)
    for alert, duration in sorted(mapping.items()):
        if alert not in alerts:
            raise AnsibleFilterError(f"{name}: no alert {alert!r} (alerts: {sorted(alerts)})")
        if not isinstance(duration, str) or not _DURATION.match(duration):
            raise AnsibleFilterError(f"{name}: {alert}: {duration!r} is not a duration")
        edit(alerts[alert], duration, f"{name}: {alert}")
    changed = ", ".join(f"{k}: {v}" for k, v in sorted(mapping.items()))
    header = [
        "# Puente's alert rules (roles/monitoring/files/rules/puente.rules.yml, where the comments are),",
        *lines,
        f"# with the {_WHAT[name]} this inventory sets ({name}): {changed}.",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=False, width=110, allow_unicode=True)


def _set_range(rule: dict[str, Any], duration: str, where: str) -> None:
    expr = str(rule["expr"])
    if _SUBQUERY.search(expr):
        raise AnsibleFilterError(f"{where}: subqueries are not supported")
    new, found = _RANGE.subn(f"[{duration}]", expr)
    if not found:
        raise AnsibleFilterError(f"{where}: its expression has no range: {expr}")
    rule["expr"] = new


def _set_hold(rule: dict[str, Any], duration: str, where: str) -> None:
    rule["for"] = str(duration)  # a plain str: yaml cannot dump the inventory's tagged one


_WHAT = {"monitoring_rule_ranges": "ranges", "monitoring_rule_holds": "holds (for:)"}


def monitoring_rule_ranges(text: str, ranges: Mapping[str, str] | None) -> str:
    """``text`` (a rules file) with every range selector of each named alert's ``expr`` set to its
    duration; the text unchanged when ``ranges`` is empty. Unknown alerts, bad durations and
    expressions without a range (or with a subquery) are refused, never ignored."""
    return _rewrite(text, ranges, "monitoring_rule_ranges", _set_range)


def monitoring_rule_holds(text: str, holds: Mapping[str, str] | None) -> str:
    """``text`` (a rules file) with each named alert's ``for:`` set to its duration ("0s": it fires at
    the first evaluation that finds its condition); the text unchanged when ``holds`` is empty. Unknown
    alerts and bad durations are refused."""
    return _rewrite(text, holds, "monitoring_rule_holds", _set_hold)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "monitoring_rule_ranges": monitoring_rule_ranges,
            "monitoring_rule_holds": monitoring_rule_holds,
        }
