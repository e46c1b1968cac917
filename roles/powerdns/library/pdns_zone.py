#!/usr/bin/python
# Copyright: Puente maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one PowerDNS zone and its record sets, kept equal to a declared list."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: pdns_zone
short_description: Make a PowerDNS Authoritative zone hold exactly the declared record sets
description:
  - Talks to the PowerDNS Authoritative HTTP API (U(https://doc.powerdns.com/authoritative/http-api/zone.html))
    on the node itself. Creates the zone when it is missing, then compares every declared record set
    (name, type, TTL, contents) with the zone and sends ONE PATCH with only the record sets that differ.
    Nothing is sent when the zone already matches, so C(changed) is honest and a second run reports no change.
  - With I(purge=true), record sets of the zone that are not declared are deleted (never the SOA).
  - Supports check mode and diff mode (the diff lists the record sets to replace and to delete).
options:
  api_url:
    description: Base URL of the PowerDNS webserver.
    type: str
    default: http://127.0.0.1:8081
  api_key:
    description: The server's C(api-key).
    type: str
    required: true
  server_id:
    description: PowerDNS server id in the API.
    type: str
    default: localhost
  zone:
    description: Zone name (a trailing dot is added when missing).
    type: str
    required: true
  kind:
    description: Zone kind used when the zone is created.
    type: str
    default: Native
    choices: [Native, Master, Slave]
  soa_edit_api:
    description:
      - SOA-EDIT-API of a new zone (DEFAULT increases the serial on every change made through the API).
    type: str
    default: DEFAULT
  rrsets:
    description:
      - Record sets. C(name) is relative to the zone (C(@) for the apex) or absolute with a trailing dot.
      - C(records) are contents in PowerDNS presentation format
        (C(10.0.0.1), C(ns1.example.), C(A "ifurlup(...)")).
    type: list
    elements: dict
    required: true
  purge:
    description: Delete the zone's record sets that are not in I(rrsets) (the SOA is never deleted).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each API call.
    type: int
    default: 10
"""

RETURN = r"""
replaced:
  description: Names and types of the record sets created or replaced.
  type: list
  returned: always
deleted:
  description: Names and types of the record sets deleted.
  type: list
  returned: always
created_zone:
  description: Whether the zone itself was created.
  type: bool
  returned: always
"""

# Record types whose contents hold domain names; PowerDNS lowercases them and wants them absolute.
NAME_TYPES = {"CNAME", "NS", "PTR", "DNAME"}


def _fqdn(name: str, zone: str) -> str:
    name = name.strip()
    if name in ("", "@"):
        return zone
    if name.endswith("."):
        return name.lower()
    return f"{name}.{zone}".lower()


def _normalise(rrset: dict, zone: str) -> tuple[tuple[str, str], dict]:
    rtype = str(rrset["type"]).upper()
    records = [str(r).strip() for r in rrset["records"]]
    if rtype in NAME_TYPES:
        records = [r.lower() if r.endswith(".") else f"{r}.".lower() for r in records]
    key = (_fqdn(str(rrset["name"]), zone), rtype)
    return key, {"ttl": int(rrset["ttl"]), "records": sorted(set(records))}


class PowerDNSAPI:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.base = module.params["api_url"].rstrip("/") + "/api/v1/servers/" + module.params["server_id"]
        self.key = module.params["api_key"]
        self.timeout = module.params["timeout"]

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("X-API-Key", self.key)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = {"error": raw.decode(errors="replace")}
            return exc.code, payload
        except (urllib.error.URLError, OSError) as exc:
            self.module.fail_json(msg=f"PowerDNS API {method} {self.base + path} unreachable: {exc}")
            raise  # unreachable: fail_json exits

    def expect(self, method: str, path: str, ok: tuple[int, ...], body: dict | None = None) -> dict | None:
        status, payload = self.call(method, path, body)
        if status not in ok:
            detail = (payload or {}).get("error", payload)
            msg = f"PowerDNS API {method} {path} answered {status}: {detail}"
            self.module.fail_json(msg=msg, request=body)
        return payload


def _diff_text(items: dict) -> str:
    lines = []
    for (name, rtype), spec in sorted(items.items()):
        for record in spec["records"]:
            lines.append(f"{name}\t{spec['ttl']}\tIN\t{rtype}\t{record}")
    return "\n".join(lines) + ("\n" if lines else "")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "api_url": {"type": "str", "default": "http://127.0.0.1:8081"},
            "api_key": {"type": "str", "required": True, "no_log": True},
            "server_id": {"type": "str", "default": "localhost"},
            "zone": {"type": "str", "required": True},
            "kind": {"type": "str", "default": "Native", "choices": ["Native", "Master", "Slave"]},
            "soa_edit_api": {"type": "str", "default": "DEFAULT"},
            "rrsets": {"type": "list", "elements": "dict", "required": True},
            "purge": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    zone = module.params["zone"].lower()
    zone = zone if zone.endswith(".") else zone + "."
    api = PowerDNSAPI(module)
    zone_path = "/zones/" + urllib.parse.quote(zone, safe="")

    desired: dict[tuple[str, str], dict] = {}
    for rrset in module.params["rrsets"]:
        missing = [k for k in ("name", "type", "ttl", "records") if k not in rrset]
        if missing:
            module.fail_json(msg=f"rrset {rrset!r} lacks {', '.join(missing)}")
        key, spec = _normalise(rrset, zone)
        if key in desired:
            module.fail_json(msg=f"rrset {key[0]} {key[1]} is declared twice; merge its records")
        if not key[0].endswith(zone) or not spec["records"]:
            module.fail_json(msg=f"rrset {key[0]} {key[1]} is outside {zone} or has no records")
        desired[key] = spec

    status, current_zone = api.call("GET", zone_path)
    created = False
    if status in (404, 422):  # 4.7 answers 404 "Not Found" for an unknown zone (older: 422)
        created = True
        current: dict[tuple[str, str], dict] = {}
        if not module.check_mode:
            body = {
                "name": zone,
                "kind": module.params["kind"],
                "soa_edit_api": module.params["soa_edit_api"],
                "nameservers": [],
            }
            api.expect("POST", "/zones", (201,), body)
            current_zone = api.expect("GET", zone_path, (200,))
    elif status != 200:
        module.fail_json(msg=f"PowerDNS API GET {zone_path} answered {status}: {current_zone}")

    current = {}
    for rrset in (current_zone or {}).get("rrsets", []):
        key = (rrset["name"].lower(), rrset["type"])
        current[key] = {
            "ttl": int(rrset["ttl"]),
            "records": sorted({r["content"] for r in rrset.get("records", []) if not r.get("disabled")}),
        }

    to_replace = {k: v for k, v in desired.items() if current.get(k) != v}
    to_delete = {}
    if module.params["purge"]:
        to_delete = {k: v for k, v in current.items() if k not in desired and k[1] != "SOA"}

    changed = created or bool(to_replace) or bool(to_delete)
    if changed and not module.check_mode and (to_replace or to_delete):
        patch = [
            {
                "name": name,
                "type": rtype,
                "ttl": spec["ttl"],
                "changetype": "REPLACE",
                "records": [{"content": c, "disabled": False} for c in spec["records"]],
            }
            for (name, rtype), spec in sorted(to_replace.items())
        ] + [{"name": name, "type": rtype, "changetype": "DELETE"} for (name, rtype) in sorted(to_delete)]
        api.expect("PATCH", zone_path, (204,), {"rrsets": patch})

    before = {k: current[k] for k in list(to_replace) + list(to_delete) if k in current}
    result = {
        "changed": changed,
        "created_zone": created,
        "replaced": [f"{n} {t}" for n, t in sorted(to_replace)],
        "deleted": [f"{n} {t}" for n, t in sorted(to_delete)],
        "diff": {
            "before_header": f"{zone} (PowerDNS)",
            "after_header": f"{zone} (declared)",
            "before": _diff_text(before),
            "after": _diff_text(to_replace),
        },
    }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
