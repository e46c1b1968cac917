"""Rule 8 (``--stack STACK``): ``Pulumi.<STACK>.yaml`` passes the program's own validation and holds no
placeholder.

The validation is the program's: ``stacks/puente_cloud/config.py``'s ``load()``, run the way ``pulumi
preview`` starts the program (config handed over as the engine does, under Pulumi's mock runtime so no
engine or cloud is needed) but stopping right after the config is read — nothing is declared. Each line of
its ConfigError becomes a finding; the placeholders it found (with :mod:`puente.placeholders`, the
recognition rule 3 uses too) become ``placeholder`` findings with the file's line. ``secure:`` values
cannot be read without the stack's secrets provider: a valid stand-in is passed for them (the real secret
is not inspected).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from puente.check.findings import Finding, show_path
from puente.placeholders import FIX
from puente.shell import ROOT

# Passes the program's password rules (16-128 characters, none of / @ " or space); never used for anything.
_SECRET_STAND_IN = "puente-check-stand-in-secret"


def _scalars(node: yaml.Node, path: str = "") -> Iterator[tuple[str, str, int]]:
    """(config key path, scalar, line) for every scalar under ``node``."""
    if isinstance(node, yaml.ScalarNode):
        yield path, str(node.value), node.start_mark.line + 1
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(value, f"{path}.{key.value}" if path else str(key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _scalars(item, f"{path}[{i}]")


def check(stack: str, project_dir: Path = ROOT) -> list[Finding]:
    file = project_dir / f"Pulumi.{stack}.yaml"
    where = show_path(file)
    if not file.is_file():
        known = ", ".join(
            sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        )
        return [
            Finding(
                "stack-config",
                where,
                f"there is no such stack file (stacks here: {known or 'none'}).",
                "give the name of a stack, e.g. --stack prod.",
            )
        ]
    try:
        root = yaml.compose(file.read_text())
        data = yaml.safe_load(file.read_text()) or {}
        project_doc = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [
            Finding("stack-config", where, "cannot read it: " + " ".join(str(exc).split()), "fix the YAML.")
        ]
    config_node = next(
        (v for k, v in getattr(root, "value", []) if getattr(k, "value", None) == "config"), None
    )
    lines = {path: line for path, _, line in _scalars(config_node)} if config_node is not None else {}
    project = str(project_doc.get("name", "puente"))
    main = project_dir / str(project_doc.get("main", "stacks"))
    config = {}
    secure: list[str] = []
    for key, value in ((data.get("config") or {}) if isinstance(data, dict) else {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full], secure = _SECRET_STAND_IN, [*secure, full]
        else:
            config[full] = value
    out = []
    for problem, placeholder in validate(main, project, stack, config, secure):
        key = problem.split(": ", 1)[0]
        line = lines.get(key) or lines.get(key.split("[")[0])
        at = f"{where}:{line} {key}" if line else f"{where} {key}"
        if placeholder is not None:
            out.append(Finding("placeholder", at, f"{placeholder[1]}.", FIX[placeholder[0]]))
            continue
        out.append(
            Finding(
                "stack-config",
                at,
                problem.split(": ", 1)[-1].rstrip(".") + ".",
                f"correct it in {where} (stacks/puente_cloud/config.py validates it; docs/CLOUD.md).",
            )
        )
    return out


Problem = tuple[str, tuple[str, str] | None]  # (problem line, (placeholder kind, what) or None)


def validate(
    main: Path, project: str, stack: str, config: dict[str, Any], secret_keys: list[str]
) -> list[Problem]:
    """The problems ``puente_cloud.config.load()`` reports for this config (empty when it accepts it),
    each with its placeholder kind and phrase when it is an example value."""
    try:
        import pulumi
        from pulumi.runtime import set_all_config, set_mocks
    except ImportError:
        return [
            (
                "pulumi: the Pulumi SDK is not installed here (pip install -e '.[stacks]'), so the stack's "
                "configuration was not validated",
                None,
            )
        ]
    if str(main) not in sys.path:
        sys.path.insert(0, str(main))  # as the language host runs the program directory
    try:
        from puente_cloud import config as stack_config
    except ImportError as exc:
        return [(f"program: cannot import the program's config module from {show_path(main)} ({exc})", None)]

    class NothingDeclared(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            raise RuntimeError(f"the config check declared {args.typ}")

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            raise RuntimeError(f"the config check called {args.token}")

    def body() -> list[Problem]:
        asyncio.set_event_loop(asyncio.new_event_loop())
        strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
        set_all_config(strings, secret_keys)
        set_mocks(NothingDeclared(), project=project, stack=stack, preview=True)
        try:
            stack_config.load()
        except stack_config.ConfigError as exc:
            found = {p.problem: (p.kind, p.what) for p in exc.placeholders}
            return [(problem, found.get(problem)) for problem in exc.problems]
        return []

    # A fresh context: the SDK keeps its settings and config in context variables.
    return contextvars.Context().run(body)
