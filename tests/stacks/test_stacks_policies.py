"""The CrossGuard pack, driven over gRPC like the engine does: the stacks pass, each policy can fail."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Sequence
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


def _queue_with_dlq(alarm: dict[str, Any] | None = None) -> None:
    """A queue, its DLQ and an alarm on the DLQ's depth (its keywords `alarm` replaced)."""
    dlq = aws.sqs.Queue("dlq", fifo_queue=True, kms_master_key_id="alias/x", tags=TAGS)
    aws.sqs.Queue(
        "q",
        fifo_queue=True,
        kms_master_key_id="alias/x",
        tags=TAGS,
        redrive_policy=dlq.arn.apply(lambda a: json.dumps({"deadLetterTargetArn": a, "maxReceiveCount": 5})),
    )
    topic = aws.sns.Topic("alarms", kms_master_key_id="alias/x", tags=TAGS)
    depth: dict[str, Any] = dict(
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": dlq.name},
        statistic="Maximum",
        comparison_operator="GreaterThanThreshold",
        threshold=0,
        period=300,
        evaluation_periods=1,
        alarm_actions=[topic.arn],
        ok_actions=[topic.arn],
        tags=TAGS,
    )
    aws.cloudwatch.MetricAlarm("dlq-depth", **{**depth, **(alarm or {})})


BACKUP_TAGS = {**TAGS, "Purpose": "database-backups"}


def _bucket(*, backup: bool = True, omit: str = "", sse: str = "aws:kms") -> None:
    """A bucket with every protection; `omit` one of them (public-block, versioning, object-lock)."""
    bucket = aws.s3.Bucket(
        "b", object_lock_enabled=omit != "object-lock", tags=BACKUP_TAGS if backup else TAGS
    )
    by_default: dict[str, Any] = {"sse_algorithm": sse}
    if sse.startswith("aws:kms"):
        by_default["kms_master_key_id"] = "arn:aws:kms:eu-west-1:123456789012:key/x"
    aws.s3.BucketServerSideEncryptionConfiguration(
        "b", bucket=bucket.id, rules=[{"apply_server_side_encryption_by_default": by_default}]
    )
    if omit != "public-block":
        aws.s3.BucketPublicAccessBlock(
            "b",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
    if omit != "versioning":
        aws.s3.BucketVersioning("b", bucket=bucket.id, versioning_configuration={"status": "Enabled"})
    if omit != "object-lock":
        aws.s3.BucketObjectLockConfiguration(
            "b",
            bucket=bucket.id,
            object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": "GOVERNANCE", "days": 7}},
        )


def test_a_backup_bucket_with_every_protection_passes(policy_pack: PolicyPackServer) -> None:
    """The failing buckets below differ from this one by one thing each."""
    assert policy_pack.analyze(_run(_bucket)) == []


def _deployment_without_hpa_and_pdb() -> None:
    _deployment(
        {"readinessProbe": PROBE, "livenessProbe": PROBE, "securityContext": HARDENED, "resources": RESOURCES}
    )


def _database_client(url: str, ca_mount: bool = False) -> None:
    """A background container (no port: no probe, HPA or PDB expected) given a database URL; with
    ``ca_mount``, a CA ConfigMap mounted read-only at /etc/puente/database-ca.crt."""
    labels = {"app": "x"}
    container: dict[str, Any] = {
        "name": "worker",
        "image": "i",
        "env": [{"name": "PUENTE_DATABASE_URL", "value": url}],
        "securityContext": HARDENED,
        "resources": RESOURCES,
    }
    pod: dict[str, Any] = {"containers": [container]}
    if ca_mount:
        k8s.core.v1.ConfigMap(
            "ca",
            metadata={"name": "ca", "namespace": "n"},
            data={"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
        )
        container["volumeMounts"] = [
            {"name": "ca", "mountPath": "/etc/puente/database-ca.crt", "subPath": "ca.crt", "readOnly": True}
        ]
        pod["volumes"] = [{"name": "ca", "configMap": {"name": "ca"}}]
    k8s.apps.v1.Deployment(
        "d",
        metadata={"name": "x", "namespace": "n"},
        spec={"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod}},
    )


# A public edge shaped like the stacks': internet-facing ALB -> HTTPS listener -> the API's target group,
# its web ACL, and API Gateway -> VPC link -> that listener. Each keyword breaks one thing.
REMOVE_CLIENT_ID = {"overwrite:path": "$request.path", "remove:header.x-client-id": "''"}
CLIENT_ID_RULE = {
    "name": "refuse-client-id-header",
    "priority": 2,
    "action": {"block": {}},
    "statement": {
        "size_constraint_statement": {
            "field_to_match": {"single_header": {"name": "x-client-id"}},
            "comparison_operator": "GT",
            "size": 0,
            "text_transformations": [{"priority": 0, "type": "NONE"}],
        }
    },
}


def _visible(rule: dict[str, Any]) -> dict[str, Any]:
    metric = rule["name"].replace("-", "")
    return {
        **rule,
        "visibility_config": {
            "cloudwatch_metrics_enabled": False,
            "metric_name": metric,
            "sampled_requests_enabled": False,
        },
    }


def _internal_rule(path: str, priority: int, ip_set_arn: Any, forwarded_ip: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {"arn": ip_set_arn}
    if forwarded_ip:  # the "source" a client writes itself
        ref["ip_set_forwarded_ip_config"] = {
            "header_name": "X-Forwarded-For",
            "fallback_behavior": "NO_MATCH",
            "position": "FIRST",
        }
    return {
        "name": f"{path.strip('/').replace('/', '-')}-only-from-monitoring",
        "priority": priority,
        "action": {"block": {}},
        "statement": {
            "and_statement": {
                "statements": [
                    {
                        "byte_match_statement": {
                            "field_to_match": {"uri_path": {}},
                            "positional_constraint": "STARTS_WITH",
                            "search_string": path,
                            "text_transformations": [{"priority": 0, "type": "URL_DECODE"}],
                        }
                    },
                    {"not_statement": {"statement": {"ip_set_reference_statement": ref}}},
                ]
            }
        },
    }


def _edge(
    *,
    mapping: dict[str, str] | None = None,
    routed: bool = True,
    integration_type: str = "HTTP_PROXY",
    rules: Sequence[str] = ("client-id", "metrics", "readiness"),
    monitoring: Sequence[str] = ("10.89.0.0/16",),
    forwarded_ip: bool = False,
    default_action: dict[str, Any] | None = None,
    target_type: str = "instance",
) -> None:
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.60.0.0/16", tags=TAGS)
    lb = aws.lb.LoadBalancer(
        "alb", load_balancer_type="application", internal=False, subnets=["subnet-1", "subnet-2"], tags=TAGS
    )
    tg = aws.lb.TargetGroup(
        "api", vpc_id=vpc.id, port=30080, protocol="HTTP", target_type=target_type, tags=TAGS
    )
    listener = aws.lb.Listener(
        "https",
        load_balancer_arn=lb.arn,
        port=443,
        protocol="HTTPS",
        certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/x",
        default_actions=[default_action or {"type": "forward", "target_group_arn": tg.arn}],
        tags=TAGS,
    )
    ip_set = aws.wafv2.IpSet(
        "monitoring", scope="REGIONAL", ip_address_version="IPV4", addresses=list(monitoring), tags=TAGS
    )
    chosen = {
        "client-id": CLIENT_ID_RULE,
        "metrics": _internal_rule("/metrics", 3, ip_set.arn, forwarded_ip),
        "readiness": _internal_rule("/readyz/details", 4, ip_set.arn, forwarded_ip),
        "allow-all-first": {
            "name": "allow-all-first",
            "priority": 1,
            "action": {"allow": {}},
            "statement": {"ip_set_reference_statement": {"arn": ip_set.arn}},
        },
    }
    acl = aws.wafv2.WebAcl(
        "waf",
        scope="REGIONAL",
        default_action={"allow": {}},
        rules=[_visible(chosen[r]) for r in rules],
        visibility_config={
            "cloudwatch_metrics_enabled": False,
            "metric_name": "waf",
            "sampled_requests_enabled": False,
        },
        tags=TAGS,
    )
    aws.wafv2.WebAclAssociation("waf", resource_arn=lb.arn, web_acl_arn=acl.arn)
    api = aws.apigatewayv2.Api("http-api", protocol_type="HTTP", tags=TAGS)
    link = aws.apigatewayv2.VpcLink("link", subnet_ids=["subnet-3"], security_group_ids=["sg-1"], tags=TAGS)
    integration = aws.apigatewayv2.Integration(
        "proxy",
        api_id=api.id,
        integration_type=integration_type,
        integration_method="ANY",
        connection_type="VPC_LINK",
        connection_id=link.id,
        integration_uri=listener.arn,
        payload_format_version="1.0",
        request_parameters=REMOVE_CLIENT_ID if mapping is None else mapping,
    )
    aws.apigatewayv2.Route(
        "default",
        api_id=api.id,
        route_key="$default",
        target=integration.id.apply(lambda i: f"integrations/{i}") if routed else None,
    )


# policy name -> (a program violating it, the policies it must violate: exactly these)
FAILING: dict[str, tuple[Callable[[], Any], set[str]]] = {
    "encryption-at-rest": (
        lambda: aws.rds.Instance("db", **{**SAFE_DB, "storage_encrypted": False}),
        {"encryption-at-rest"},
    ),
    "s3-buckets-encrypted": (
        lambda: aws.s3.Bucket("logs", tags=TAGS),
        {"s3-buckets-encrypted", "s3-no-public-access"},
    ),
    "s3-no-public-access": (lambda: _bucket(backup=False, omit="public-block"), {"s3-no-public-access"}),
    "backup-bucket-versioned": (lambda: _bucket(omit="versioning"), {"backup-bucket-versioned"}),
    # SSE-S3: encrypted, but with a key anyone with s3:GetObject can use
    "backup-bucket-encrypted-with-kms": (lambda: _bucket(sse="AES256"), {"backup-bucket-encrypted-with-kms"}),
    "backup-bucket-deletion-protected": (
        lambda: _bucket(omit="object-lock"),
        {"backup-bucket-deletion-protected"},
    ),
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
    # the alarm watches the main queue, not its DLQ
    "dead-letter-queue-alarmed": (
        lambda: _queue_with_dlq({"dimensions": {"QueueName": "q.fifo"}}),
        {"dead-letter-queue-alarmed"},
    ),
    "alarms-notify": (lambda: _queue_with_dlq({"ok_actions": []}), {"alarms-notify"}),
    "probes-present": (
        lambda: _deployment({"securityContext": HARDENED, "resources": RESOURCES}),
        {"probes-present", "hpa-and-pdb-present"},
    ),
    "pods-hardened": (
        lambda: _deployment({"readinessProbe": PROBE, "livenessProbe": PROBE}),
        {"pods-hardened", "hpa-and-pdb-present"},
    ),
    "hpa-and-pdb-present": (_deployment_without_hpa_and_pdb, {"hpa-and-pdb-present"}),
    # libpq's default (prefer): TLS if offered, nothing verified, and no CA mounted
    "database-tls-verified": (
        lambda: _database_client("postgresql://puente@db:5432/puente"),
        {"database-tls-verified"},
    ),
    # a TCP check: every member passes it, so writes would reach standbys
    "database-endpoint-follows-leader": (
        lambda: aws.lb.TargetGroup(
            "pg", port=5432, protocol="TCP", target_type="ip", vpc_id="vpc-1", tags=TAGS
        ),
        {"database-endpoint-follows-leader"},
    ),
    # API Gateway passes the caller's X-Client-Id on to the API
    "edge-ends-in-the-api-check": (
        lambda: _edge(mapping={"overwrite:path": "$request.path"}),
        {"edge-ends-in-the-api-check"},
    ),
    # the web ACL of the ALB has no rule for /metrics: anyone on the internet reads it
    "metrics-not-public": (lambda: _edge(rules=("client-id", "readiness")), {"metrics-not-public"}),
    # ... nor for the detailed readiness: anyone reads which dependency fails, with its exception text
    "readiness-details-not-public": (
        lambda: _edge(rules=("client-id", "metrics")),
        {"readiness-details-not-public"},
    ),
}


def test_the_edge_shaped_like_the_stacks_passes(policy_pack: PolicyPackServer) -> None:
    """The failing edges below differ from this one by one keyword each."""
    assert policy_pack.analyze(_run(_edge)) == []


EDGE_ROUTED_AROUND_THE_API: dict[str, Callable[[], Any]] = {
    "Authorization rewritten": lambda: _edge(
        mapping={**REMOVE_CLIENT_ID, "overwrite:header.Authorization": "Bearer pk_shared"}
    ),
    "X-Client-Id appended to": lambda: _edge(
        mapping={**REMOVE_CLIENT_ID, "append:header.X-Client-Id": "$request.header.x-tenant"}
    ),
    "X-Client-Id overwritten from the request": lambda: _edge(
        mapping={"overwrite:header.X-Client-Id": "$request.querystring.client"}
    ),
    "every path sent to /healthz": lambda: _edge(mapping={**REMOVE_CLIENT_ID, "overwrite:path": "/healthz"}),
    "a route with no integration": lambda: _edge(routed=False),
    "a Lambda integration": lambda: _edge(integration_type="AWS_PROXY"),
    "a fixed 200 on the public listener": lambda: _edge(
        default_action={
            "type": "fixed-response",
            "fixed_response": {"content_type": "application/json", "status_code": "200"},
        }
    ),
    "a Lambda target group": lambda: _edge(target_type="lambda"),
    "no web ACL rule refusing X-Client-Id on the ALB": lambda: _edge(rules=("metrics", "readiness")),
}


@pytest.mark.parametrize("broken", sorted(EDGE_ROUTED_AROUND_THE_API))
def test_an_edge_routing_around_the_api_check_is_a_violation(
    broken: str, policy_pack: PolicyPackServer
) -> None:
    violations = policy_pack.analyze(_run(EDGE_ROUTED_AROUND_THE_API[broken]))
    assert {v.policy for v in violations} == {"edge-ends-in-the-api-check"}, violations


def test_an_overridden_client_id_and_a_refusal_are_no_violation(policy_pack: PolicyPackServer) -> None:
    """Overriding X-Client-Id with a value the client does not choose is as good as removing it; a
    fixed-response that refuses (4xx) answers nothing on the API's behalf."""
    assert policy_pack.analyze(_run(lambda: _edge(mapping={"overwrite:header.x-client-id": "none"}))) == []
    refusal = {
        "type": "fixed-response",
        "fixed_response": {"content_type": "text/plain", "status_code": "403"},
    }
    violations = policy_pack.analyze(_run(lambda: _edge(default_action=refusal)))
    assert violations == []


@pytest.mark.parametrize(
    ("monitoring", "forwarded_ip"),
    [
        (("0.0.0.0/0",), False),  # everyone is "monitoring"
        (("10.60.0.0/24",), False),  # inside the VPC: where API Gateway's VPC link comes from
        (("52.48.0.0/14",), False),  # a public network
        (("10.89.0.0/16",), True),  # the source read from X-Forwarded-For, which the client writes
    ],
)
def test_internal_paths_open_to_more_than_the_monitoring_networks_is_a_violation(
    monitoring: tuple[str, ...], forwarded_ip: bool, policy_pack: PolicyPackServer
) -> None:
    violations = policy_pack.analyze(_run(lambda: _edge(monitoring=monitoring, forwarded_ip=forwarded_ip)))
    internal = {"metrics-not-public", "readiness-details-not-public"}
    assert {v.policy for v in violations} == internal, violations


def test_an_allow_rule_before_the_refusals_is_a_violation(policy_pack: PolicyPackServer) -> None:
    violations = policy_pack.analyze(
        _run(lambda: _edge(rules=("allow-all-first", "client-id", "metrics", "readiness")))
    )
    assert sorted((v.policy, v.message.splitlines()[-1]) for v in violations) == [
        (
            "edge-ends-in-the-api-check",
            "web ACL waf: rule allow-all-first allows before X-Client-Id is refused",
        ),
        ("metrics-not-public", "web ACL waf: rule allow-all-first allows before /metrics is refused"),
        (
            "readiness-details-not-public",
            "web ACL waf: rule allow-all-first allows before /readyz/details is refused",
        ),
    ]


# The real stack's graph, broken in one place: (resource type, resource name, how) -> the policy it breaks.
def _without_rule(name: str) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        inputs["rules"] = [r for r in inputs["rules"] if r["name"] != name]

    return change


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        inputs[key] = value

    return change


def _mappings(drop: str = "", add: dict[str, str] | None = None) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        params = inputs["requestParameters"]
        if drop:
            params.pop(drop)
        params.update(add or {})

    return change


INTEGRATION = "aws:apigatewayv2/integration:Integration"
BROKEN_STACK: dict[str, tuple[str, str, Callable[[dict[str, Any]], None], str]] = {
    "API Gateway passes X-Client-Id on": (
        INTEGRATION,
        "edge-http-api",
        _mappings(drop="remove:header.x-client-id"),
        "edge-ends-in-the-api-check",
    ),
    "API Gateway rewrites Authorization": (
        INTEGRATION,
        "edge-http-api",
        _mappings(add={"overwrite:header.Authorization": "Bearer pk_shared"}),
        "edge-ends-in-the-api-check",
    ),
    "the ALB's web ACL lets X-Client-Id through": (
        "aws:wafv2/webAcl:WebAcl",
        "edge-waf",
        _without_rule("refuse-client-id-header"),
        "edge-ends-in-the-api-check",
    ),
    "the ALB's web ACL serves /metrics to anyone": (
        "aws:wafv2/webAcl:WebAcl",
        "edge-waf",
        _without_rule("metrics-only-from-monitoring"),
        "metrics-not-public",
    ),
    "the ALB's web ACL serves /readyz/details to anyone": (
        "aws:wafv2/webAcl:WebAcl",
        "edge-waf",
        _without_rule("readiness-details-only-from-monitoring"),
        "readiness-details-not-public",
    ),
    "the monitoring networks include the VPC": (
        "aws:wafv2/ipSet:IpSet",
        "edge-waf-monitoring",
        _set("addresses", ["10.89.0.0/16", "10.60.0.0/16"]),
        "metrics-not-public readiness-details-not-public",
    ),
}


CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _url(key: str, replace: str, by: str) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        assert replace in inputs["data"][key]
        inputs["data"][key] = inputs["data"][key].replace(replace, by)

    return change


def _ca_mount(container: str, change_mount: Callable[[list[dict[str, Any]]], None]) -> Any:
    def change(inputs: dict[str, Any]) -> None:
        pod = inputs["spec"]["template"]["spec"]
        (c,) = [c for c in [*pod["containers"], *pod.get("initContainers", [])] if c["name"] == container]
        change_mount(c["volumeMounts"])

    return change


def _drop_ca(mounts: list[dict[str, Any]]) -> None:
    mounts[:] = [m for m in mounts if m["name"] != "database-ca"]


def _writable_ca(mounts: list[dict[str, Any]]) -> None:
    for m in mounts:
        if m["name"] == "database-ca":
            m.pop("readOnly")


TLS = "?sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt"
BROKEN_STACK.update(
    {
        "the API's database URL asks for no TLS": (
            CONFIG_MAP,
            "api-runtime",
            _url("PUENTE_DATABASE_URL", TLS, ""),
            "database-tls-verified",
        ),
        "the API's read URL only requires TLS": (
            CONFIG_MAP,
            "api-runtime",
            _url("PUENTE_DATABASE_READ_URL", "verify-full", "require"),
            "database-tls-verified",
        ),
        "the API's database URL names a CA file nobody mounts": (
            CONFIG_MAP,
            "api-runtime",
            _url("PUENTE_DATABASE_URL", "/etc/puente/database-ca.crt", "/etc/ssl/other-ca.crt"),
            "database-tls-verified",
        ),
        "the worker does not mount the CA": (
            DEPLOYMENT,
            "api-background",
            _ca_mount("worker", _drop_ca),
            "database-tls-verified",
        ),
        "the migrate init container does not mount the CA": (
            DEPLOYMENT,
            "api-api",
            _ca_mount("migrate", _drop_ca),
            "database-tls-verified",
        ),
        "the API mounts the CA writable": (
            DEPLOYMENT,
            "api-api",
            _ca_mount("api", _writable_ca),
            "database-tls-verified",
        ),
        "the CA's ConfigMap holds no certificate": (
            CONFIG_MAP,
            "api-database-ca",
            _set("data", {"database-ca.crt": ""}),
            "database-tls-verified",
        ),
    }
)


def _unset(key: str) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        inputs.pop(key)

    return change


METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BROKEN_STACK.update(
    {
        "an alarm notifies nobody when it clears": (
            METRIC_ALARM,
            "alarms-health-check-onprem",
            _set("okActions", []),
            "alarms-notify",
        ),
        "an alarm notifies nobody when it fires": (
            METRIC_ALARM,
            "alarms-vpn-tunnel1",
            _unset("alarmActions"),
            "alarms-notify",
        ),
        "an alarm's actions are disabled": (
            METRIC_ALARM,
            "alarms-dlq-depth",
            _set("actionsEnabled", False),
            "alarms-notify",
        ),
        "the alarm topic is not encrypted": (
            "aws:sns/topic:Topic",
            "alarms-topic",
            _unset("kmsMasterKeyId"),
            "encryption-at-rest",
        ),
    }
)


def _sse_s3(inputs: dict[str, Any]) -> None:
    inputs["rules"] = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]


def _no_retention(inputs: dict[str, Any]) -> None:
    inputs.pop("rule")


BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BROKEN_STACK.update(
    {
        "the backup bucket's versioning suspended": (
            BUCKET_VERSIONING,
            "backup-bucket",
            _set("versioningConfiguration", {"status": "Suspended"}),
            "backup-bucket-versioned",
        ),
        "the backup bucket encrypted with S3's key (SSE-S3)": (
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "backup-bucket",
            _sse_s3,
            "backup-bucket-encrypted-with-kms",
        ),
        "the backup bucket's public policies not restricted": (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "backup-bucket",
            _set("restrictPublicBuckets", False),
            "s3-no-public-access",
        ),
        "the access log bucket's public ACLs not blocked": (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "edge-access-logs",
            _set("blockPublicAcls", False),
            "s3-no-public-access",
        ),
        "the backup bucket without object lock": (
            "aws:s3/bucket:Bucket",
            "backup-bucket",
            _set("objectLockEnabled", False),
            "backup-bucket-deletion-protected",
        ),
        "the backup bucket's object lock without a default retention": (
            "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
            "backup-bucket",
            _no_retention,
            "backup-bucket-deletion-protected",
        ),
        "the backup bucket destroyable with its objects": (
            "aws:s3/bucket:Bucket",
            "backup-bucket",
            _set("forceDestroy", True),
            "backup-bucket-deletion-protected",
        ),
    }
)


def test_the_real_backup_bucket_without_versioning_fails(
    dev: Recording, policy_pack: PolicyPackServer
) -> None:
    violations = policy_pack.analyze(_without(dev, BUCKET_VERSIONING, {"backup-bucket"}))
    assert {v.policy for v in violations} == {"backup-bucket-versioned"}, violations
    assert "not versioned: an overwritten or deleted backup is gone" in violations[0].message


def _without(rec: Recording, type_: str, names: set[str]) -> Recording:
    """A copy of `rec` without the named resources of `type_`."""
    kept = [r for r in rec.resources if not (r.type == type_ and r.name in names)]
    assert len(kept) == len(rec.resources) - len(names), f"not all of {names} in the recording"
    return dataclasses.replace(rec, resources=kept)


def test_the_real_stack_without_an_alarm_on_its_dead_letter_queue_fails(
    dev: Recording, policy_pack: PolicyPackServer
) -> None:
    broken = _without(dev, METRIC_ALARM, {"alarms-dlq-depth", "alarms-dlq-age"})
    violations = policy_pack.analyze(broken)
    assert [(v.policy, v.urn.rsplit("::", 1)[1]) for v in violations] == [
        ("dead-letter-queue-alarmed", "queue-dlq")
    ], violations
    # the oldest message's age alone speaks too late (after deadLetterMaxAgeSeconds)
    violations = policy_pack.analyze(_without(dev, METRIC_ALARM, {"alarms-dlq-depth"}))
    assert [v.policy for v in violations] == ["dead-letter-queue-alarmed"], violations
    # and the depth alone is enough
    assert policy_pack.analyze(_without(dev, METRIC_ALARM, {"alarms-dlq-age"})) == []


def _broken(rec: Recording, type_: str, name: str, change: Callable[[dict[str, Any]], None]) -> Recording:
    """A copy of `rec` with one resource's inputs changed (the recording itself is shared by the session)."""
    resources = []
    for r in rec.resources:
        if r.type == type_ and r.name == name:
            inputs, wire = copy.deepcopy(r.inputs), copy.deepcopy(r.wire_inputs)
            change(inputs)
            change(wire)
            r = dataclasses.replace(r, inputs=inputs, wire_inputs=wire)
        resources.append(r)
    assert resources != rec.resources, f"no {type_} {name} in the recording"
    return dataclasses.replace(rec, resources=resources)


@pytest.mark.parametrize("broken", sorted(BROKEN_STACK))
def test_the_real_edge_broken_in_one_place_fails(
    broken: str, dev: Recording, policy_pack: PolicyPackServer
) -> None:
    type_, name, change, policy = BROKEN_STACK[broken]
    assert policy_pack.analyze(dev) == []
    violations = policy_pack.analyze(_broken(dev, type_, name, change))
    assert {v.policy for v in violations} == set(policy.split()), violations


def test_a_database_client_verifying_its_server_passes(policy_pack: PolicyPackServer) -> None:
    """The failing case with the URL fixed and the CA mounted: no violation (the policy's positive twin)."""

    def program() -> None:
        _database_client(
            "postgresql://puente@db:5432/puente?sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt",
            ca_mount=True,
        )

    assert policy_pack.analyze(_run(program)) == []


def test_the_database_tls_violation_names_the_container_and_what_is_missing(
    dev: Recording, policy_pack: PolicyPackServer
) -> None:
    broken = _broken(dev, DEPLOYMENT, "api-background", _ca_mount("worker", _drop_ca))
    violations = policy_pack.analyze(broken)
    assert [v.message.splitlines()[-1] for v in violations if v.policy == "database-tls-verified"] == [
        "Deployment puente/puente-api-background: container worker connects to the database but mounts "
        "nothing at /etc/puente/database-ca.crt"
    ], violations
    violations = policy_pack.analyze(
        _broken(dev, CONFIG_MAP, "api-runtime", _url("PUENTE_DATABASE_URL", TLS, ""))
    )
    # every container of both Deployments gets the URL: api, migrate, relay, worker, reaper
    assert len(violations) == 5
    assert all(
        "PUENTE_DATABASE_URL asks for sslmode=(none: libpq's prefer), not verify-full" in v.message
        for v in violations
    ), violations


def test_the_real_api_gateway_route_without_its_integration_fails(
    dev: Recording, policy_pack: PolicyPackServer
) -> None:
    resources = [
        dataclasses.replace(r, property_dependencies={**r.property_dependencies, "target": ()})
        if r.type == "aws:apigatewayv2/route:Route"
        else r
        for r in dev.resources
    ]
    violations = policy_pack.analyze(dataclasses.replace(dev, resources=resources))
    assert [(v.policy, v.urn.rsplit("::", 1)[1]) for v in violations] == [
        ("edge-ends-in-the-api-check", "edge-http-api")
    ]
    assert "answers without the API" in violations[0].message


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
