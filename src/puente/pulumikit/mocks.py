"""Recording mocks: a MockMonitor that captures every registration and refuses what the engine refuses.

Stock `pulumi.runtime.set_mocks` hides mistakes: duplicate URNs silently overwrite, unanswered invokes
return `{}`, outputs the mock does not return come back None. This monitor records the whole graph,
fails on duplicate URNs and on invokes nobody answered, and answers resources with realistic provider
outputs (ARNs, DNS names, endpoints) so that `apply` callbacks in the program run on real-looking values.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf import json_format
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks, rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from .recording import (
    SECRET_SIG,
    SECRET_SIG_KEY,
    RecordedInvoke,
    RecordedResource,
    Recording,
    UnansweredInvokeError,
)

ACCOUNT_ID = "123456789012"
InvokeAnswer = Callable[[dict[str, Any]], dict[str, Any]]
# Pulumi's wire marker for an unknown value (preview).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"


def plain(value: Any) -> Any:
    """Wire JSON -> plain values: secrets unwrapped, resource references replaced by their URN."""
    if isinstance(value, dict):
        sig = value.get(SECRET_SIG_KEY)
        if sig == SECRET_SIG:
            return plain(value.get("value"))
        if sig == RESOURCE_SIG:
            return value.get("urn")
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _policy_document(args: dict[str, Any]) -> dict[str, Any]:
    """What aws.iam.get_policy_document returns: the statements rendered as IAM JSON."""
    statements = []
    for st in args.get("statements") or []:
        out: dict[str, Any] = {"Effect": st.get("effect", "Allow")}
        if st.get("sid"):
            out["Sid"] = st["sid"]
        if st.get("actions"):
            out["Action"] = st["actions"]
        if st.get("resources"):
            out["Resource"] = st["resources"]
        principals: dict[str, list[str]] = {}
        for p in st.get("principals") or []:
            principals.setdefault(p["type"], []).extend(p["identifiers"])
        if principals:
            out["Principal"] = principals
        conditions: dict[str, dict[str, list[str]]] = {}
        for c in st.get("conditions") or []:
            conditions.setdefault(c["test"], {})[c["variable"]] = c["values"]
        if conditions:
            out["Condition"] = conditions
        statements.append(out)
    doc = {"Version": "2012-10-17", "Statement": statements}
    return {
        "json": json.dumps(doc, indent=2),
        "minifiedJson": json.dumps(doc, separators=(",", ":")),
        "id": "policy-document",
    }


def default_invoke_answers(region: str) -> dict[str, InvokeAnswer]:
    """Answers for the provider functions a typical AWS program calls; anything else fails loudly."""
    return {
        "aws:index/getCallerIdentity:getCallerIdentity": lambda _a: {
            "accountId": ACCOUNT_ID,
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock",
            "userId": "AIDMOCK",
            "id": ACCOUNT_ID,
        },
        "aws:index/getPartition:getPartition": lambda _a: {
            "partition": "aws",
            "dnsSuffix": "amazonaws.com",
            "id": "aws",
        },
        "aws:index/getRegion:getRegion": lambda _a: {"name": region, "region": region, "id": region},
        "aws:iam/getPolicyDocument:getPolicyDocument": _policy_document,
        # The regional ELB account that writes load balancer access logs (eu-west-1's, for any region).
        "aws:elb/getServiceAccount:getServiceAccount": lambda _a: {
            "arn": "arn:aws:iam::156460612806:root",
            "id": "156460612806",
            "region": region,
        },
        "aws:ec2/getAmi:getAmi": lambda a: {
            "id": "ami-0123456789abcdef0",
            "imageId": "ami-0123456789abcdef0",
            "name": "debian-12-amd64-mock",
            "architecture": "x86_64",
            "owners": a.get("owners", []),
        },
    }


class RecordingMocks(Mocks):
    """Answers resources with synthesized outputs and invokes from an explicit table."""

    def __init__(self, region: str, invoke_answers: Mapping[str, InvokeAnswer] | None = None) -> None:
        self.region = region
        self.answers: dict[str, InvokeAnswer] = default_invoke_answers(region)
        self.answers.update(invoke_answers or {})

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]]]:
        answer = self.answers.get(args.token)
        if answer is None:
            raise UnansweredInvokeError(
                f"invoke {args.token} has no answer in the kit: add one to invoke_answers "
                "(stock mocks would have returned {} and the program would have run on None)"
            )
        return answer(dict(args.args)), []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        return synthesize(args.typ, args.name, dict(args.inputs), self.region)


def _arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


def synthesize(type_: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict]:
    """Provider outputs the way AWS would fill them, for the properties programs usually read."""
    state = dict(inputs)
    if not type_.startswith("aws:"):
        return f"{name}-id", state
    module = type_.split(":")[1].split("/")[0]
    # pulumi-aws 7: a resource may name its own region (else the provider's)
    region = str(inputs.get("region") or region)
    physical = str(inputs.get("name") or f"{name}-mock")
    rid = f"{name}-id"
    state.setdefault("arn", _arn(module, region, physical))
    state.setdefault("tagsAll", inputs.get("tags", {}))
    extra: dict[str, Any] = {}
    match type_:
        case "aws:lb/loadBalancer:LoadBalancer":
            extra = {
                "dnsName": f"{physical}-123456.{region}.elb.amazonaws.com",
                "zoneId": "Z32O12XQLNTSW2",
                "arnSuffix": f"app/{physical}/50dc6c495c0c9188",
                "name": physical,
            }
        case "aws:lb/targetGroup:TargetGroup":
            extra = {"arnSuffix": f"targetgroup/{physical}/73e2d6bc24d8a067", "name": physical}
        case "aws:acm/certificate:Certificate":
            domain = inputs.get("domainName", "example.com")
            extra = {
                "domainValidationOptions": [
                    {
                        "domainName": domain,
                        "resourceRecordName": f"_x1.{domain}.",
                        "resourceRecordType": "CNAME",
                        "resourceRecordValue": "_x2.acm-validations.aws.",
                    }
                ]
            }
        case "aws:eks/cluster:Cluster":
            extra = {
                "name": physical,
                "endpoint": f"https://{physical.upper()}.gr7.{region}.eks.amazonaws.com",
                "certificateAuthority": {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1PQ0sK"},
                "vpcConfig": {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": f"sg-{name}-cluster"},
                "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/MOCK"}]}],
            }
        case "aws:eks/nodeGroup:NodeGroup":
            extra = {
                "resources": [
                    {"autoscalingGroups": [{"name": f"eks-{name}-asg"}], "remoteAccessSecurityGroupId": ""}
                ]
            }
        case "aws:ecr/repository:Repository":
            extra = {
                "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/{physical}",
                "registryId": ACCOUNT_ID,
            }
        case "aws:rds/instance:Instance":
            host = f"{physical}.abcdefghij.{region}.rds.amazonaws.com"
            port = int(inputs.get("port", 5432))
            identifier = str(inputs.get("identifier") or f"{name}-mock")
            extra = {"address": host, "endpoint": f"{host}:{port}", "port": port, "identifier": identifier}
        case "aws:sqs/queue:Queue":
            rid = f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{physical}"
            extra = {"url": rid, "arn": _arn("sqs", region, physical), "name": physical}
        case "aws:ec2/instance:Instance":
            octets = hashlib.sha256(name.encode()).digest()
            ip = inputs.get("privateIp") or f"10.{octets[0]}.{octets[1]}.{octets[2] % 250 + 4}"
            extra = {"privateIp": ip, "privateDns": f"ip-{ip.replace('.', '-')}.{region}.compute.internal"}
        case "aws:ec2/vpnConnection:VpnConnection":
            # Public addresses as AWS assigns them (not documentation ones: puente check refuses those).
            extra = {"tunnel1Address": "34.240.18.11", "tunnel2Address": "52.48.27.22"}
            for i, default in ((1, "169.254.44.8/30"), (2, "169.254.45.136/30")):
                # AWS picks a /30 when none is given: .1 is its end (VGW), .2 the customer gateway's
                inside = ipaddress.ip_network(inputs.get(f"tunnel{i}InsideCidr") or default)
                digest = hashlib.sha256(f"{name} psk {i}".encode()).hexdigest()
                extra |= {
                    f"tunnel{i}InsideCidr": str(inside),
                    f"tunnel{i}VgwInsideAddress": str(inside.network_address + 1),
                    f"tunnel{i}CgwInsideAddress": str(inside.network_address + 2),
                    # 32 characters of letters, digits, . and _, not starting with 0 (AWS's rules)
                    f"tunnel{i}PresharedKey": inputs.get(f"tunnel{i}PresharedKey") or f"k{digest[:31]}",
                }
        case "aws:kms/key:Key":
            extra = {"keyId": f"{name}-key-id", "arn": _arn("kms", region, f"key/{name}-key-id")}
        case "aws:apigatewayv2/api:Api":
            extra = {
                "apiEndpoint": f"https://{name}.execute-api.{region}.amazonaws.com",
                "executionArn": _arn("execute-api", region, name),
            }
        case "aws:apigatewayv2/stage:Stage":
            extra = {"invokeUrl": f"https://{name}.execute-api.{region}.amazonaws.com/"}
        case "aws:s3/bucket:Bucket":
            prefix = inputs.get("bucketPrefix")
            bucket = str(inputs.get("bucket") or (f"{prefix}20261205a1b2c3" if prefix else f"{name}-mock"))
            extra = {
                "bucket": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
            }
            rid = bucket
        case "aws:iam/role:Role":
            extra = {"name": physical, "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}"}
        case "aws:iam/user:User" | "aws:iam/instanceProfile:InstanceProfile":
            kind = "user" if type_.endswith(":User") else "instance-profile"
            extra = {
                "name": physical,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:{kind}{inputs.get('path', '/')}{physical}",
            }
        case "aws:iam/accessKey:AccessKey":
            digest = hashlib.sha256(name.encode()).hexdigest().upper()
            rid = f"AKIA{digest[:16]}"
            extra = {"secret": hashlib.sha256(f"secret {name}".encode()).hexdigest()[:40], "status": "Active"}
        case "aws:route53/healthCheck:HealthCheck":
            rid = f"hc-{name}"
        case "aws:ec2/vpc:Vpc":
            extra = {"defaultSecurityGroupId": f"sg-{name}-default", "mainRouteTableId": f"rtb-{name}-main"}
        case "aws:ec2/vpcEndpoint:VpcEndpoint":
            extra = {"prefixListId": f"pl-{name}", "dnsEntries": []}
    state.update(extra)
    return rid, state


class RecordingMonitor(MockMonitor):
    """A MockMonitor that records every registration and enforces the engine's rules."""

    def __init__(self, mocks: RecordingMocks, recording: Recording, preview: bool = False) -> None:
        super().__init__(mocks)
        self.recording = recording
        # Like the engine in a preview: providers compute nothing, so outputs that are not inputs (ids,
        # ARNs, DNS names) stay unknown.
        self.preview = preview

    def RegisterResource(self, request):
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        _ensure_event_loop()
        urn = self.make_urn(request.parent, request.type, request.name)
        wire = json_format.MessageToDict(request.object)
        inputs = plain(wire)
        if self.preview:
            id_, state = "", dict(inputs)
        else:
            id_, state = synthesize_or_mock(self.mocks, request, inputs)
        # Keep inputs that were secret secret in the state, as the engine does.
        for key, value in wire.items():
            if isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG and key in state:
                state[key] = {SECRET_SIG_KEY: SECRET_SIG, "value": state[key]}
        self.recording.add(
            RecordedResource(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                provider=request.provider,
                dependencies=tuple(request.dependencies),
                property_dependencies={k: tuple(v.urns) for k, v in request.propertyDependencies.items()},
                inputs=inputs,
                wire_inputs=wire,
                outputs=plain(state),
                id=id_ or "",
                protect=bool(request.protect),
            )
        )
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, state)
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)

    def RegisterResourceOutputs(self, request):
        self.recording.component_outputs[request.urn] = plain(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)

    def ReadResource(self, request):
        response = super().ReadResource(request)
        self.recording.add_error(
            UnansweredInvokeError(
                f"{request.type}.get({request.name!r}) reads an existing resource; the kit holds no state"
            )
        )
        return response

    def Invoke(self, request):
        self.recording.add_invoke(RecordedInvoke(request.tok, plain(json_format.MessageToDict(request.args))))
        try:
            return super().Invoke(request)
        except UnansweredInvokeError as err:
            # Recorded as well as raised: a program that swallows the exception still fails the run.
            self.recording.add_error(err)
            raise


def synthesize_or_mock(mocks: Mocks, request: Any, inputs: dict[str, Any]) -> tuple[str, dict]:
    args = MockResourceArgs(
        typ=request.type,
        name=request.name,
        inputs=inputs,
        provider=request.provider,
        resource_id=request.importId,
        custom=bool(request.custom),
    )
    id_, state = mocks.new_resource(args)
    return id_ or "", dict(state)
