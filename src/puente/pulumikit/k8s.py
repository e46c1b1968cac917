"""Validate the Kubernetes objects a program registers, offline, with kubernetes-validate (strict)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from .recording import KitError, RecordedResource, Recording


def _wire_to_json(value: Any) -> Any:
    # JSON has one number type: 8080.0 on the wire is 8080 for the API server (Go unmarshals it as int).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _wire_to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire_to_json(v) for v in value]
    return value


def kubernetes_objects(recording: Recording) -> list[tuple[RecordedResource, dict[str, Any]]]:
    """(resource, manifest) for every Kubernetes object; provider resources excluded."""
    out = []
    for res in recording.resources:
        if res.type.startswith("kubernetes:") and "apiVersion" in res.inputs and "kind" in res.inputs:
            out.append((res, _wire_to_json(res.inputs)))
    return out


def validate_kubernetes(recording: Recording, version: str) -> int:
    """Validate every object strictly against `version` (e.g. "1.31"); returns how many were checked."""
    objects = kubernetes_objects(recording)
    full = version if version.count(".") == 2 else f"{version}.0"
    errors = []
    for res, manifest in objects:
        try:
            kubernetes_validate.validate(manifest, full, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{res.urn}: {exc.message} at {'.'.join(map(str, exc.path))}")
    if errors:
        raise KitError("Kubernetes objects invalid for " + full + ":\n" + "\n".join(errors))
    return len(objects)
