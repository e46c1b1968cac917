"""What the kit records while a Pulumi program runs under the mock runtime."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Pulumi's wire marker for a secret value (sdk/go/common/resource/sig.go).
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class KitError(AssertionError):
    """A mistake the stock mocks would have hidden; raised so the test fails."""


class DuplicateResourceError(KitError):
    pass


class UnansweredInvokeError(KitError):
    pass


class UnresolvedOutputError(KitError):
    pass


class ExpectationNeverRanError(KitError):
    pass


@dataclass(frozen=True)
class RecordedResource:
    """One resource registration, as the engine would have received it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, tuple[str, ...]]
    # Inputs as the engine receives them: camelCase keys, numbers as floats, secrets unwrapped.
    inputs: dict[str, Any]
    # The same inputs in wire form (secrets wrapped with the secret signature), for the policy pack.
    wire_inputs: dict[str, Any]
    # What the mocks answered (inputs + synthesized provider outputs).
    outputs: dict[str, Any]
    id: str
    # ResourceOptions(protect=True): the engine refuses to delete it
    protect: bool = False

    @property
    def provider_urn(self) -> str:
        """The provider reference is `urn::id`; URNs themselves contain `::`."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    def __str__(self) -> str:
        return self.urn


@dataclass(frozen=True)
class RecordedInvoke:
    token: str
    args: dict[str, Any]


@dataclass
class Recording:
    """Everything one program run registered, in registration order."""

    project: str
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    invokes: list[RecordedInvoke] = field(default_factory=list)
    errors: list[KitError] = field(default_factory=list)
    # Stack outputs, fully resolved to plain Python values (secrets unwrapped).
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    unknown_outputs: set[str] = field(default_factory=set)
    # What each component passed to register_outputs, by URN (wire form made plain).
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, res: RecordedResource) -> None:
        # RegisterResource runs on the SDK's executor threads: check-and-insert under a lock, or two
        # registrations of one URN could both pass the check.
        with self._lock:
            if any(r.urn == res.urn for r in self.resources):
                err = DuplicateResourceError(f"duplicate resource URN {res.urn} (the engine rejects this)")
                self.errors.append(err)
                raise err
            self.resources.append(res)

    def add_invoke(self, invoke: RecordedInvoke) -> None:
        with self._lock:
            self.invokes.append(invoke)

    def add_error(self, err: KitError) -> None:
        with self._lock:
            self.errors.append(err)

    # -- queries -------------------------------------------------------------------------------
    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> RecordedResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise KitError(f"expected exactly one {type_}, found {[r.urn for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise KitError(f"no resource with URN {urn}")

    def children(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def custom(self) -> Iterator[RecordedResource]:
        return (r for r in self.resources if r.custom)

    def types(self) -> set[str]:
        return {r.type for r in self.resources}
