"""Check the SHAPE of recorded pulumi-aws inputs against the SDK's own Args classes.

Nested inputs are TypedDicts: Python never checks their keys, the mocks accept anything, and a typo
(`{"status_code": ...}` vs `{"statusCode"...}`, or an argument renamed in pulumi-aws 7) would only fail
in a real `pulumi preview`. This walks every recorded input and checks each key against the generated
`<Resource><Property>Args` class of the installed pulumi_aws.
"""

from __future__ import annotations

import importlib
import inspect
import re
from functools import cache
from types import ModuleType
from typing import Any

from .recording import KitError, Recording

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


_ARGS_CLASS = re.compile(r"'(\w+?Args)(?:Dict)?'")


def _args_class(annotation: Any, inputs: ModuleType) -> type | None:
    """The nested Args class a (string) type annotation names, or None for scalars and free-form maps."""
    match = _ARGS_CLASS.search(str(annotation))
    return getattr(inputs, match.group(1), None) if match else None


@cache
def _resource(type_: str) -> tuple[dict[str, Any], ModuleType, str]:
    package, module_path, name = type_.split(":")
    mod = importlib.import_module(f"pulumi_{package}.{module_path.split('/')[0]}")
    params = dict(inspect.signature(getattr(mod, name)._internal_init).parameters)
    for skip in ("self", "resource_name", "opts", "__props__"):
        params.pop(skip, None)
    inputs = importlib.import_module(f"{mod.__name__}._inputs")
    return {k: p.annotation for k, p in params.items()}, inputs, name


def _walk(value: Any, args_cls: type | None, inputs: ModuleType, where: str, errors: list[str]) -> None:
    if args_cls is None:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, args_cls, inputs, f"{where}[{i}]", errors)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        prop = getattr(args_cls, _snake(key), None)
        if not isinstance(prop, property):
            errors.append(f"{where}.{key}: not an argument of {args_cls.__name__}")
            continue
        nested = _args_class(prop.fget.__annotations__.get("return") if prop.fget else None, inputs)
        _walk(item, nested, inputs, f"{where}.{key}", errors)


def check_aws_input_shapes(recording: Recording) -> int:
    """Raise KitError listing every unknown (nested) argument; return how many resources were checked."""
    errors: list[str] = []
    checked = 0
    for res in recording.custom():
        if not res.type.startswith("aws:"):
            continue
        params, inputs, name = _resource(res.type)
        checked += 1
        for key, value in res.inputs.items():
            snake = _snake(key)
            if snake not in params:
                errors.append(f"{res.urn}: {key}: not an argument of {name}")
                continue
            _walk(value, _args_class(params[snake], inputs), inputs, f"{res.urn}: {key}", errors)
    if errors:
        raise KitError("inputs pulumi-aws does not know:\n" + "\n".join(errors))
    return checked
