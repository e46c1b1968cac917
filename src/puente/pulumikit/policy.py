"""Drive a CrossGuard policy pack over gRPC with a recorded resource graph, as the engine does.

`pulumi up --policy-pack DIR` starts `python -m pulumi.policy <engine> DIR`, reads the port it prints,
then calls `Analyze` for each resource and `AnalyzeStack` once with the whole graph. This module starts
the very same process on loopback and sends it the kit's recording, so the pack's own deserialisation
(property proxies, secrets) runs exactly as it would for real.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from .recording import KitError, RecordedResource, Recording

_LEVELS = {0: "advisory", 1: "mandatory", 2: "disabled", 3: "remediate"}


@dataclass(frozen=True)
class Violation:
    policy: str
    message: str
    urn: str
    level: str


def _struct(props: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    json_format.ParseDict(props, s)
    return s


class PolicyPackServer:
    """A policy pack process on loopback; use as a context manager."""

    START_TIMEOUT = 60.0

    def __init__(self, pack_dir: Path, project: str = "project", stack: str = "stack") -> None:
        self.pack_dir = pack_dir
        self.env = {**os.environ, "PULUMI_PROJECT": project, "PULUMI_STACK": stack, "PULUMI_DRY_RUN": "true"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: analyzer_pb2_grpc.AnalyzerStub | None = None

    def __enter__(self) -> PolicyPackServer:
        # The engine address is required by the runner but unused by a pack that only analyzes.
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(self.pack_dir)],
            cwd=self.pack_dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        # The pack prints its port first; a pack that hangs on import must fail the run, not block it.
        ready, _, _ = select.select([self.proc.stdout], [], [], self.START_TIMEOUT)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise KitError(f"policy pack did not start: {line!r}\n{err.decode()}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(self.channel).result(timeout=self.START_TIMEOUT)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def _stub(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self.stub is None:
            raise KitError("PolicyPackServer used outside its `with` block")
        return self.stub

    def policy_names(self) -> list[str]:
        info = self._stub().GetAnalyzerInfo(empty_pb2.Empty())
        return [p.name for p in info.policies]

    def analyze(self, recording: Recording) -> list[Violation]:
        """Every violation the pack reports for the recorded graph (resource and stack policies)."""
        stub = self._stub()
        by_urn = {r.urn: r for r in recording.resources}
        violations: list[Violation] = []
        for res in recording.resources:
            request = analyzer_pb2.AnalyzeRequest(
                type=res.type,
                properties=_struct(res.wire_inputs),
                urn=res.urn,
                name=res.name,
                options=analyzer_pb2.AnalyzerResourceOptions(parent=res.parent),
                provider=_provider(by_urn.get(res.provider_urn)),
            )
            violations += _violations(stub.Analyze(request))
        stack_request = analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=r.type,
                    properties=_struct(r.wire_inputs),
                    urn=r.urn,
                    name=r.name,
                    options=analyzer_pb2.AnalyzerResourceOptions(parent=r.parent),
                    provider=_provider(by_urn.get(r.provider_urn)),
                    parent=r.parent,
                    dependencies=list(r.dependencies),
                    propertyDependencies={
                        k: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(v))
                        for k, v in r.property_dependencies.items()
                    },
                )
                for r in recording.resources
            ]
        )
        violations += _violations(stub.AnalyzeStack(stack_request))
        return violations


def _provider(res: RecordedResource | None) -> analyzer_pb2.AnalyzerProviderResource | None:
    if res is None:
        return None
    return analyzer_pb2.AnalyzerProviderResource(
        type=res.type, properties=_struct(res.wire_inputs), urn=res.urn, name=res.name
    )


def _violations(response: analyzer_pb2.AnalyzeResponse) -> list[Violation]:
    return [
        Violation(d.policyName, d.message, d.urn, _LEVELS.get(d.enforcementLevel, "?"))
        for d in response.diagnostics
    ]
