"""report.html: the audit report for people, rendered from report.json.

One self-contained file (inline CSS and a few lines of JS for the filters; no fonts, images or scripts
from anywhere): summary first, per host and per control, then every result with its evidence in
``<details>``. It reads without JavaScript (filters just do nothing) and without scrolling sideways
(long output wraps).
"""

from __future__ import annotations

from typing import Any

import jinja2

from puente.audit.catalogue import SEVERITIES
from puente.audit.report import STATUSES

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("puente.audit", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(doc: dict[str, Any]) -> str:
    by_control: dict[str, list[dict[str, Any]]] = {}
    for r in doc["results"]:
        by_control.setdefault(r["control_id"], []).append(r)
    controls = {c["id"]: c for c in doc["controls"]}
    ordered = [controls[row["id"]] for row in doc["summary"]["by_control"]]
    template = _ENV.get_template("report.html.j2")
    return template.render(
        doc=doc,
        run=doc["run"],
        summary=doc["summary"],
        controls=controls,
        ordered_controls=ordered,
        by_control=by_control,
        statuses=STATUSES,
        severities=SEVERITIES,
    )
