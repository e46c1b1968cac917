"""Run a Pulumi program (a `main:` directory, or a function) under the recording mocks.

The run mirrors what the Python language host does (`runpy.run_path(program)` inside the stack), with
config set as `<project>:<key>` before the program starts. It runs with preview=False so that `apply`
callbacks execute, then resolves every stack output to a plain value and fails if any stayed unknown
or None, if a URN was registered twice, if an invoke went unanswered, or if an `expect` never ran.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import set_all_config, set_mocks
from pulumi.runtime.settings import ROOT, SETTINGS, get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from .mocks import InvokeAnswer, RecordingMocks, RecordingMonitor
from .recording import ExpectationNeverRanError, KitError, Recording, UnresolvedOutputError

_EXPECTATIONS: contextvars.ContextVar[list[_Expectation] | None] = contextvars.ContextVar(
    "puente_kit_expectations", default=None
)


class _Expectation:
    def __init__(self, description: str) -> None:
        self.description = description
        self.ran = False
        self.failure: BaseException | None = None


def expect(value: pulumi.Input[Any], check: Callable[[Any], None], description: str) -> None:
    """Run `check` on the resolved value; the kit fails the run if the check never ran.

    A bare `output.apply(lambda v: assert ...)` silently does nothing under preview (apply callbacks
    never run); `expect` is the same thing with a receipt.
    """
    registry = _EXPECTATIONS.get()
    if registry is None:
        raise KitError("expect() called outside a kit run")
    expectation = _Expectation(description)
    registry.append(expectation)

    def _run(resolved: Any) -> None:
        expectation.ran = True
        try:
            check(resolved)
        except BaseException as exc:  # re-raised after the run, with the description
            expectation.failure = exc

    pulumi.Output.from_input(value).apply(_run)


def load_stack_config(project_dir: Path, stack: str) -> tuple[str, dict[str, Any]]:
    """Read Pulumi.yaml (project name) and Pulumi.<stack>.yaml (config) as the CLI would.

    `secure:` values are left out (they need the stack's secrets provider); pass them to `run(secrets=...)`.
    """
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(stack_file.read_text()) or {}
    config: dict[str, Any] = {}
    for key, value in (data.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Ciphertext only the stack's secrets provider can open: tests pass secrets to run().
            continue
        config[full] = value
    return project, config


def _config_strings(config: Mapping[str, Any]) -> dict[str, str]:
    # The engine hands structured config to the program as JSON text; plain strings as they are.
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def _contains_none(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_contains_none(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_none(v) for v in value)
    return False


def run(
    program: Path | Callable[[], None],
    *,
    project: str,
    stack: str,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    preview: bool = False,
    invoke_answers: Mapping[str, InvokeAnswer] | None = None,
    recording: Recording | None = None,
    allow_unknown_outputs: bool = False,
) -> Recording:
    """Run `program` (a directory with __main__.py, or a function) and return what it registered.

    Pass `recording` to keep what was registered even when the program raises (e.g. to prove that a
    configuration error declared nothing). `allow_unknown_outputs` is for runs that imitate a preview
    (`preview=True`): unknown stack outputs are then listed in `recording.unknown_outputs` instead of
    failing the run.
    """
    config = dict(config or {})
    secret_keys: Iterable[str] = list((secrets or {}).keys())
    config.update(secrets or {})
    region = str(config.get("aws:region", "us-east-1"))
    recording = recording if recording is not None else Recording(project=project, stack=stack)

    def _body() -> None:
        _ensure_event_loop()
        ROOT.set(None)
        set_all_config(_config_strings(config), list(secret_keys))
        mocks = RecordingMocks(region, invoke_answers)
        set_mocks(
            mocks,
            project=project,
            stack=stack,
            preview=preview,
            monitor=RecordingMonitor(mocks, recording, preview),
        )
        expectations: list[_Expectation] = []
        _EXPECTATIONS.set(expectations)
        SETTINGS.rpc_manager.clear()
        SETTINGS.outputs.clear()
        root = get_root_resource()

        def _program() -> None:
            if callable(program):
                program()
            else:
                runpy.run_path(str(program), run_name="__main__")

        _sync_await(run_pulumi_func(_program))
        _sync_await(_resolve_outputs(root, recording, allow_unknown_outputs))
        if recording.errors:
            raise recording.errors[0]
        for e in expectations:
            if not e.ran:
                raise ExpectationNeverRanError(
                    f"expectation {e.description!r} never ran (an apply under preview, or an unknown value)"
                )
            if e.failure is not None:
                raise AssertionError(f"expectation {e.description!r} failed: {e.failure}") from e.failure

    # A fresh context per run: the SDK keeps its settings, root stack and config in context variables.
    contextvars.Context().run(_body)
    return recording


def _ensure_event_loop() -> None:
    """The SDK creates futures with the thread's current loop (`asyncio.Future()`), as the engine's
    language host provides one. Test runners (pytest-asyncio, anyio, schemathesis) may leave the main
    thread with none after their own tests, so give it a fresh one when it has none or a closed one."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


async def _resolve_outputs(root: Any, recording: Recording, allow_unknown: bool) -> None:
    for key, value in getattr(root, "outputs", {}).items():
        out = pulumi.Output.from_input(value)
        if not await out.is_known():
            if allow_unknown:
                recording.unknown_outputs.add(key)
                continue
            raise UnresolvedOutputError(f"stack output {key!r} is unknown (preview, or a mock gave no value)")
        resolved = await out.future()
        if _contains_none(resolved):
            raise UnresolvedOutputError(
                f"stack output {key!r} contains None: {resolved!r} (a property the mocks did not return?)"
            )
        recording.outputs[key] = resolved
        if await out.is_secret():
            recording.secret_outputs.add(key)
