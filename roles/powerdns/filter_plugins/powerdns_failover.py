"""Filters of the `powerdns` role: the LUA content of a failover record.

A failover record is ``{name, ttl, url, timeout, primary: [IPv4...], secondary: [IPv4...]}``
(``powerdns_failover_records``). PowerDNS 4.7's ``ifurlup(url, {{primary}, {secondary}}, opts)`` answers,
with ``selector`` (here ``random``), ONE up address of the first set that has any; when no address of
any set is up it applies ``backupSelector`` to every candidate of every set - by default ``random``, so
half of the answers would name the primary, the site that went down first. The rendered record asks for
``backupSelector='all'`` instead: an all-down result then holds every candidate (|primary| +
|secondary| >= 2 addresses) while a healthy one holds exactly one, and the record answers the whole
secondary set in that case. The body starts with ``;`` (a multi-statement LUA record, which must
``return`` its answer).

Anything that could not be quoted safely or that PowerDNS would misread (a fractional timeout is 0 = no
timeout in 4.7) fails the play with the offending record named.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ansible.errors import AnsibleFilterError

# http(s)://host[:port]/path with nothing that would end the Lua string or the record's quoted text.
_URL = re.compile(r"^https?://[^/\s'\"\\]+/[^\s'\"\\]*$")


def _addresses(record: dict[str, Any], key: str) -> list[str]:
    raw = record.get(key)
    if not isinstance(raw, list) or not raw:
        raise AnsibleFilterError(
            f"powerdns_failover_lua: record {record.get('name')!r} needs a non-empty list `{key}`, "
            f"got {raw!r}"
        )
    out = []
    for item in raw:
        try:
            out.append(str(ipaddress.IPv4Address(str(item))))
        except ValueError as exc:
            raise AnsibleFilterError(
                f"powerdns_failover_lua: record {record.get('name')!r}: {item!r} in `{key}` is not an IPv4 "
                "address (the record is an A record)"
            ) from exc
    return out


def _lua_list(addresses: list[str]) -> str:
    return "{" + ", ".join(f"'{a}'" for a in addresses) + "}"


def powerdns_failover_lua(record: dict[str, Any]) -> str:
    """The record's content for a ``LUA`` record set: ``A ";local r = ifurlup(...) ... return r"``."""
    if not isinstance(record, dict):
        raise AnsibleFilterError(f"powerdns_failover_lua: a failover record is a mapping, got {record!r}")
    name = record.get("name")
    url = str(record.get("url", ""))
    if not _URL.match(url):
        raise AnsibleFilterError(
            f"powerdns_failover_lua: record {name!r}: url must be http(s)://host[:port]/path without quotes, "
            f"backslashes or spaces, got {url!r}"
        )
    timeout = record.get("timeout", 2)
    if isinstance(timeout, bool) or not re.fullmatch(r"[1-9][0-9]*", str(timeout)):
        raise AnsibleFilterError(
            f"powerdns_failover_lua: record {name!r}: timeout must be whole seconds >= 1 (PowerDNS 4.7 reads "
            f"a fraction as 0 = no timeout), got {timeout!r}"
        )
    primary = _addresses(record, "primary")
    secondary = _addresses(record, "secondary")
    check = (
        f"ifurlup('{url}', {{{_lua_list(primary)}, {_lua_list(secondary)}}}, "
        f"{{timeout={int(str(timeout))}, selector='random', backupSelector='all'}})"
    )
    # Healthy: one address (selector random). Every set down: all |primary| + |secondary| >= 2
    # candidates (backupSelector all) -> answer the secondary set, never the primary.
    code = f";local r = {check} if #r > 1 then return {_lua_list(secondary)} end return r"
    return f'A "{code}"'


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"powerdns_failover_lua": powerdns_failover_lua}
