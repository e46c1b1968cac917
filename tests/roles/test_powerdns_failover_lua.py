"""Filter `powerdns_failover_lua` (roles/powerdns/filter_plugins): the LUA content of a failover record.

Unit tests, no lab: what is rendered and what is refused. What PowerDNS answers with it (the secondary
when every set is down) is proven on the lab's server by tests/roles/test_powerdns.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]
_PLUGIN = REPO / "roles" / "powerdns" / "filter_plugins" / "powerdns_failover.py"
plugin = load_module(_PLUGIN)
render = plugin.powerdns_failover_lua

LAB = {
    "name": "api", "ttl": 2, "url": "https://api.puente.lab:443/readyz?scope=read", "timeout": 1,
    "primary": ["10.89.1.10"], "secondary": ["10.89.2.10"],
}  # fmt: skip


def _record(**changes: Any) -> dict[str, Any]:
    return {**LAB, **changes}


def test_the_lab_record() -> None:
    assert render(LAB) == (
        "A \";local r = ifurlup('https://api.puente.lab:443/readyz?scope=read', {{'10.89.1.10'}, "
        "{'10.89.2.10'}}, {timeout=1, selector='random', backupSelector='all'}) "
        "if #r > 1 then return {'10.89.2.10'} end return r\""
    )


def test_several_addresses_per_set_keep_their_order() -> None:
    out = render(_record(primary=["10.0.0.2", "10.0.0.1"], secondary=["10.0.1.9", "10.0.1.3"]))
    assert "{{'10.0.0.2', '10.0.0.1'}, {'10.0.1.9', '10.0.1.3'}}" in out
    # The all-down branch answers the whole secondary set, never a primary address.
    assert out.endswith("if #r > 1 then return {'10.0.1.9', '10.0.1.3'} end return r\"")


def test_all_down_is_told_apart_by_count() -> None:
    # Healthy answers come from selector 'random' (exactly one address); all-down ones from
    # backupSelector 'all' (every candidate: at least one primary + one secondary = 2 or more).
    out = render(LAB)
    assert "selector='random'" in out and "backupSelector='all'" in out
    assert re.search(r"if #r > 1 then", out)


def test_timeout_defaults_to_two_seconds() -> None:
    record = _record()
    del record["timeout"]
    assert "{timeout=2," in render(record)


def test_timeout_as_a_string_of_digits_is_accepted() -> None:
    assert "{timeout=3," in render(_record(timeout="3"))


def test_content_is_one_quoted_string() -> None:
    out = render(LAB)
    assert out.startswith('A ";') and out.endswith('"') and out.count('"') == 2


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"timeout": 0.5}, "timeout must be whole seconds"),
        ({"timeout": 0}, "timeout must be whole seconds"),
        ({"timeout": True}, "timeout must be whole seconds"),
        ({"primary": []}, "non-empty list `primary`"),
        ({"secondary": "10.89.2.10"}, "non-empty list `secondary`"),
        ({"secondary": ["2001:db8::1"]}, "not an IPv4 address"),
        ({"primary": ["gateway"]}, "not an IPv4 address"),
        ({"url": "https://api.puente.lab:443"}, "url must be"),
        ({"url": "ftp://api.puente.lab/readyz"}, "url must be"),
        ({"url": "https://api.puente.lab/x'); os.exit() --"}, "url must be"),
        ({"url": 'https://api.puente.lab/"x'}, "url must be"),
    ],
)
def test_bad_records_are_refused(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(expected)):
        render(_record(**changes))


def test_filter_is_registered() -> None:
    assert plugin.FilterModule().filters()["powerdns_failover_lua"] is render
