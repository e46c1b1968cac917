"""puente.pulumikit — a test kit that closes the holes of Pulumi's mock runtime.

- `run(...)` runs a real program directory (or a function) under recording mocks and returns a
  `Recording` of every resource (type, name, inputs, parent, provider, dependencies) and the resolved
  stack outputs. It fails on duplicate URNs, unanswered invokes, unknown/None outputs, and `expect`
  checks that never ran.
- `PolicyPackServer` starts a CrossGuard policy pack the way the CLI does and drives it over gRPC with
  the recorded graph (`Analyze` per resource, `AnalyzeStack` once).
- `validate_kubernetes(...)` validates recorded Kubernetes objects with kubernetes-validate (strict).
- `check_aws_input_shapes(...)` checks every (nested) pulumi-aws input key against the SDK's Args
  classes: the mocks accept any dict key, the provider would not.
"""

from .k8s import kubernetes_objects, validate_kubernetes
from .policy import PolicyPackServer, Violation
from .recording import (
    DuplicateResourceError,
    ExpectationNeverRanError,
    KitError,
    RecordedResource,
    Recording,
    UnansweredInvokeError,
    UnresolvedOutputError,
)
from .runner import expect, load_stack_config, run
from .shapes import check_aws_input_shapes

__all__ = [
    "DuplicateResourceError",
    "ExpectationNeverRanError",
    "KitError",
    "PolicyPackServer",
    "RecordedResource",
    "Recording",
    "UnansweredInvokeError",
    "UnresolvedOutputError",
    "Violation",
    "check_aws_input_shapes",
    "expect",
    "kubernetes_objects",
    "load_stack_config",
    "run",
    "validate_kubernetes",
]
