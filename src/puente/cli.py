"""`puente` — the toolkit's CLI. It orchestrates podman, ansible-playbook and pytest; it never replaces
them: each step is printed as the plain command it runs.

Sub-commands live in their own modules, each exposing ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from puente.shell import CommandError

# module path -> the sub-command it registers; a module that is not there yet is skipped.
_COMMANDS = (
    "puente.lab.cli",
    "puente.drill.cli",
    "puente.audit.cli",
    "puente.check.cli",
    "puente.image.cli",
    "puente.keys.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="puente", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"puente: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
