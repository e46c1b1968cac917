"""Render the templates both halves share (templates/) the way Ansible's `template` module does.

The Ansible side renders templates/api/*.j2 with the `template` module; the Pulumi side renders the very
same files here. To produce identical text this module reproduces what matters of Ansible's environment:
`trim_blocks=True`, the trailing newline kept, undefined variables are errors, and the `comment` filter
(same algorithm as ansible.plugins.filter.core.comment). `ansible_managed` is provided by the caller
(Pulumi passes a "managed by Pulumi" line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

_COMMENT_STYLES: dict[str, dict[str, str]] = {
    "plain": {"decoration": "# "},
    "erlang": {"decoration": "% "},
    "c": {"decoration": "// "},
    "cblock": {"beginning": "/*", "decoration": " * ", "end": " */"},
    "xml": {"beginning": "<!--", "decoration": " - ", "end": "-->"},
}


def comment(text: str, style: str = "plain", **kw: Any) -> str:
    """Ansible's `comment` filter: wrap `text` in comment decoration (same output, same options)."""
    if style not in _COMMENT_STYLES:
        raise ValueError(f"Invalid style {style!r}. Available styles: {', '.join(_COMMENT_STYLES)}")
    style_params = _COMMENT_STYLES[style]
    prepostfix = kw.get("decoration", style_params["decoration"])
    p: dict[str, Any] = {
        "newline": "\n",
        "beginning": "",
        "prefix": prepostfix.rstrip(),
        "prefix_count": 1,
        "decoration": "",
        "postfix": prepostfix.rstrip(),
        "postfix_count": 1,
        "end": "",
    }
    p.update(style_params)
    p.update(kw)
    nl = p["newline"]
    beginning = f"{p['beginning']}{nl}" if p["beginning"] else ""
    prefix = ""
    if p["prefix"]:
        prefix = (f"{p['prefix']}{nl}" if p["prefix"] != nl else nl) * int(p["prefix_count"])
    body = (p["decoration"] + text.replace(nl, nl + p["decoration"])).replace(
        p["decoration"] + nl, p["decoration"].rstrip() + nl
    )
    postfix = nl.join([""] + [p["postfix"] for _ in range(int(p["postfix_count"]))])
    end = f"{nl}{p['end']}" if p["end"] else ""
    return f"{beginning}{prefix}{body}{postfix}{end}"


def environment(templates_dir: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # Ansible's template module default
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["comment"] = comment
    return env


def managed_by_pulumi(source: str) -> str:
    """The `ansible_managed` text used when Pulumi renders a shared template."""
    return f"Managed by Pulumi from templates/{source}; do not edit by hand."


def render(name: str, variables: dict[str, Any], templates_dir: Path = TEMPLATES_DIR) -> str:
    """Render templates/<name> with `variables` (+ `ansible_managed`, unless given)."""
    values = {"ansible_managed": managed_by_pulumi(name), **variables}
    return environment(templates_dir).get_template(name).render(**values)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines of a rendered environment file (comments and blanks skipped)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise ValueError(f"not a KEY=value line: {line!r}")
        result[key] = value
    return result
