"""The CrossGuard pack, driven over gRPC like the engine does: the stacks pass, each policy can fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from puente_policies import POLICIES, REQUIRED_TAGS, TAGGABLE_TYPES
from stacks_helpers import PROGRAM, TEST_SECRETS, stack_config

from puente import pulumikit
from puente.pulumikit import PolicyPackServer, Recording

TAGS = {k: "x" for k in REQUIRED_TAGS}
PROD_TAGS = {**TAGS, "Environment": "prod"}
SAFE_DB: dict[str, Any] = dict(
    engine="postgres",
    instance_class="db.t4g.micro",
    allocated_storage=20,
    username="u",
    password="p" * 16,
    storage_encrypted=True,
    publicly_accessible=False,
    skip_final_snapshot=True,
    tags=TAGS,
)
HARDENED = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}
PROBE = {"httpGet": {"path": "/readyz", "port": 8080}}


def _run(program: Callable[[], Any]) -> Recording:
    return pulumikit.run(program, project="puente", stack="policy-test", config={"aws:region": "eu-west-1"})


def _deployment(container: dict[str, Any]) -> k8s.apps.v1.Deployment:
    labels = {"app": "x"}
    return k8s.apps.v1.Deployment(
        "d",
        metadata={"name": "x", "namespace": "n"},
        spec={
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "i", "ports": [{"containerPort": 8080}], **container}
                    ]
                },
            },
        },
    )


def _open_ssh() -> None:
    sg = aws.ec2.SecurityGroup("sg", description="x", tags=TAGS)
    aws.vpc.SecurityGroupIngressRule(
        "ssh",
        security_group_id=sg.id,
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=22,
        to_port=22,
        tags=TAGS,
    )


def _open_https_without_load_balancer() -> None:
    sg = aws.ec2.SecurityGroup("sg", description="x", tags=TAGS)
    aws.vpc.SecurityGroupIngressRule(
        "https",
        security_group_id=sg.id,
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
        tags=TAGS,
    )


def _open_inline_egress() -> None:
    aws.ec2.SecurityGroup(
        "sg",
        description="x",
        tags=TAGS,
        egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
    )


def _queue_without_dlq() -> None:
    aws.sqs.Queue("q", fifo_queue=True, kms_master_key_id="alias/x", tags=TAGS)


def _queue_with_dlq() -> None:
    dlq = aws.sqs.Queue("dlq", fifo_queue=True, kms_master_key_id="alias/x", tags=TAGS)
    aws.sqs.Queue(
        "q",
        fifo_queue=True,
        kms_master_key_id="alias/x",
        tags=TAGS,
        redrive_policy=dlq.arn.apply(lambda a: json.dumps({"deadLetterTargetArn": a, "maxReceiveCount": 5})),
    )


def _deployment_without_hpa_and_pdb() -> None:
    _deployment(
        {"readinessProbe": PROBE, "livenessProbe": PROBE, "securityContext": HARDENED, "resources": RESOURCES}
    )


# policy name -> (a program violating it, the policies it must violate: exactly these)
FAILING: dict[str, tuple[Callable[[], Any], set[str]]] = {
    "encryption-at-rest": (
        lambda: aws.rds.Instance("db", **{**SAFE_DB, "storage_encrypted": False}),
        {"encryption-at-rest"},
    ),
    "s3-buckets-encrypted": (lambda: aws.s3.Bucket("logs", tags=TAGS), {"s3-buckets-encrypted"}),
    "no-public-database": (
        lambda: aws.rds.Instance("db", **{**SAFE_DB, "publicly_accessible": True}),
        {"no-public-database"},
    ),
    "open-ingress-only-on-public-listener": (_open_ssh, {"open-ingress-only-on-public-listener"}),
    "required-tags": (
        lambda: aws.ec2.Vpc("v", cidr_block="10.0.0.0/16", tags={"Owner": "x"}),
        {"required-tags"},
    ),
    "prod-database-resilience": (
        lambda: aws.rds.Instance("db", **{**SAFE_DB, "tags": PROD_TAGS, "multi_az": False}),
        {"prod-database-resilience"},
    ),
    "sqs-dead-letter-queue": (_queue_without_dlq, {"sqs-dead-letter-queue"}),
    "probes-present": (
        lambda: _deployment({"securityContext": HARDENED, "resources": RESOURCES}),
        {"probes-present", "hpa-and-pdb-present"},
    ),
    "pods-hardened": (
        lambda: _deployment({"readinessProbe": PROBE, "livenessProbe": PROBE}),
        {"pods-hardened", "hpa-and-pdb-present"},
    ),
    "hpa-and-pdb-present": (_deployment_without_hpa_and_pdb, {"hpa-and-pdb-present"}),
    # a TCP check: every member passes it, so writes would reach standbys
    "database-endpoint-follows-leader": (
        lambda: aws.lb.TargetGroup(
            "pg", port=5432, protocol="TCP", target_type="ip", vpc_id="vpc-1", tags=TAGS
        ),
        {"database-endpoint-follows-leader"},
    ),
}


def test_every_policy_of_the_pack_has_a_failing_case(policy_pack: PolicyPackServer) -> None:
    assert sorted(policy_pack.policy_names()) == sorted(p.name for p in POLICIES) == sorted(FAILING)


@pytest.mark.parametrize("policy", sorted(FAILING))
def test_policy_fails_a_violating_program(policy: str, policy_pack: PolicyPackServer) -> None:
    program, expected = FAILING[policy]
    violations = policy_pack.analyze(_run(program))
    assert {v.policy for v in violations} == expected, violations
    assert all(v.level == "mandatory" for v in violations)


@pytest.mark.parametrize("program", [_open_https_without_load_balancer, _open_inline_egress])
def test_open_rules_not_on_a_public_listener_are_violations(
    program: Callable[[], Any], policy_pack: PolicyPackServer
) -> None:
    violations = policy_pack.analyze(_run(program))
    assert {v.policy for v in violations} == {"open-ingress-only-on-public-listener"}


def test_a_queue_used_as_dead_letter_queue_needs_none_itself(policy_pack: PolicyPackServer) -> None:
    assert policy_pack.analyze(_run(_queue_with_dlq)) == []


def test_the_stacks_pass_every_policy(any_stack: Recording, policy_pack: PolicyPackServer) -> None:
    assert policy_pack.analyze(any_stack) == []


def test_the_pack_judges_a_preview_too(policy_pack: PolicyPackServer) -> None:
    """`pulumi preview --policy-pack` sees computed values as unknown; a policy that reads one gives up
    with an advisory "can't run during preview". None of ours may: they must decide on a preview."""
    project, config = stack_config("prod")
    preview = pulumikit.run(
        PROGRAM,
        project=project,
        stack="prod",
        config=config,
        secrets=TEST_SECRETS,
        preview=True,
        allow_unknown_outputs=True,
    )
    assert preview.unknown_outputs  # it really was a preview: ids, ARNs and DNS names unknown
    assert '"04da6b54-80e4-46f7-96ec-b56ff0331ba9"' in json.dumps([r.wire_inputs for r in preview.resources])
    assert policy_pack.analyze(preview) == []


def test_violations_name_the_resource(policy_pack: PolicyPackServer) -> None:
    violations = policy_pack.analyze(_run(_open_ssh))
    assert [v.urn for v in violations] == [
        "urn:pulumi:policy-test::puente::pulumi:pulumi:Stack$"
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule::ssh"
    ]
    assert "ingress 22.0-22.0 open to ['0.0.0.0/0']" in violations[0].message


def test_taggable_types_cover_every_taggable_type_the_stacks_declare(
    dev: Recording, geo: Recording, cloud_only: Recording
) -> None:
    """The required-tags policy knows taggable types by a list; it must not miss one the program uses."""
    import importlib
    import inspect

    missing = []
    for type_ in sorted(dev.types() | geo.types() | cloud_only.types()):
        if not type_.startswith("aws:"):
            continue
        module, name = type_.split(":")[1].split("/")[0], type_.split(":")[2]
        cls = getattr(importlib.import_module(f"pulumi_aws.{module}"), name)
        if "tags" in inspect.signature(cls._internal_init).parameters and type_ not in TAGGABLE_TYPES:
            missing.append(type_)
    assert missing == []


def test_pack_treats_secrets_as_the_engine_sends_them(policy_pack: PolicyPackServer) -> None:
    def program() -> None:
        aws.rds.Instance("db", **{**SAFE_DB, "password": pulumi.Output.secret("p" * 16)})

    recording = _run(program)
    wire = recording.one("aws:rds/instance:Instance").wire_inputs["password"]
    assert wire["value"] == "p" * 16 and len(wire) == 2  # wrapped with Pulumi's secret signature
    assert policy_pack.analyze(recording) == []
