"""Waivers: accepted exceptions to a control, for named hosts, until an expiry date.

File format (audit/waivers.yml)::

    waivers:
      - control: PUENTE-PKG-01          # the control id
        hosts: [onprem-db2, "cloud-*"]  # inventory names or shell-style patterns; ["*"] = every host
        justification: why the risk is accepted, who accepted it
        expires: 2027-03-31             # ISO date; the waiver stops applying at the START of that day (UTC)
        approved_by: name or ticket     # optional

A failure a waiver covers is reported as "waived" (pytest's xfail) until the expiry; from that day on it
fails again, with the expired waiver shown next to it. A malformed file stops the run before any host is
touched.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from puente.audit.catalogue import CONTROL_ID

_FIELDS = {"control", "hosts", "justification", "expires", "approved_by"}
_REQUIRED = _FIELDS - {"approved_by"}


class WaiverError(ValueError):
    """The waivers file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Waiver:
    control: str
    hosts: tuple[str, ...]
    justification: str
    expires: dt.date
    approved_by: str = ""

    def covers(self, control_id: str, host: str) -> bool:
        return control_id == self.control and any(fnmatch.fnmatchcase(host, p) for p in self.hosts)

    def active(self, today: dt.date) -> bool:
        return today < self.expires

    def to_dict(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "hosts": list(self.hosts),
            "justification": self.justification,
            "expires": self.expires.isoformat(),
            "approved_by": self.approved_by,
        }


def parse(data: Any, source: str = "waivers") -> list[Waiver]:
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {"waivers"} or not isinstance(data["waivers"], list | None):
        raise WaiverError(f"{source}: expected a mapping with one key 'waivers' holding a list")
    waivers = []
    for n, entry in enumerate(data["waivers"] or [], start=1):
        where = f"{source}: waiver #{n}"
        if not isinstance(entry, dict):
            raise WaiverError(f"{where}: expected a mapping, got {type(entry).__name__}")
        if missing := sorted(_REQUIRED - set(entry)):
            raise WaiverError(f"{where}: missing {', '.join(missing)}")
        if unknown := sorted(set(entry) - _FIELDS):
            raise WaiverError(f"{where}: unknown field(s) {', '.join(unknown)}")
        control = entry["control"]
        if not isinstance(control, str) or not CONTROL_ID.match(control):
            raise WaiverError(f"{where}: control {control!r} is not a control id like PUENTE-SSH-01")
        hosts = entry["hosts"]
        if isinstance(hosts, str):
            hosts = [hosts]
        if not hosts or not all(isinstance(h, str) and h for h in hosts):
            raise WaiverError(f"{where} ({control}): hosts must be a non-empty list of host names/patterns")
        justification = entry["justification"]
        if not isinstance(justification, str) or len(justification.split()) < 3:
            raise WaiverError(f"{where} ({control}): justification must say why (a sentence)")
        expires = entry["expires"]
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError as exc:
                raise WaiverError(f"{where} ({control}): expires {expires!r} is not an ISO date") from exc
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            raise WaiverError(
                f"{where} ({control}): expires must be a date (YYYY-MM-DD); a waiver "
                "without an expiry is not accepted"
            )
        waivers.append(
            Waiver(
                control=control,
                hosts=tuple(hosts),
                justification=" ".join(justification.split()),
                expires=expires,
                approved_by=str(entry.get("approved_by") or ""),
            )
        )
    return waivers


def load(path: Path) -> list[Waiver]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WaiverError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise WaiverError(f"{path}: not valid YAML: {exc}") from exc
    return parse(data, str(path))


def find(waivers: list[Waiver], control_id: str, host: str) -> Waiver | None:
    """The waiver for this control on this host: an active one first, else the latest expired one."""
    matching = [w for w in waivers if w.covers(control_id, host)]
    return max(matching, key=lambda w: w.expires, default=None)


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
