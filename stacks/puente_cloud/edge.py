"""Edge: the public ALB (HTTPS only, ACM, HTTP->HTTPS redirect, access logs), WAF, API Gateway HTTP API.

Authentication is the API's own (its outermost layer checks `Authorization: Bearer <API key>` against the
keys in the replicated database, on both sites): the edge declares no second check, it makes sure every
public path ends in that one. Both public paths (the ALB directly, and API Gateway -> VPC link -> the same
ALB listener) reach the API's target group and nothing else, pass `Authorization` unchanged, never pass a
client's `X-Client-Id` (API Gateway removes it; the ALB cannot remove a request header, so its WAF refuses
a request carrying one), and serve `/metrics` and the detailed readiness `/readyz/details` only to the
monitoring networks (docs/CLOUD.md, Authentication at the cloud edge).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .network import Network
from .security import private_bucket, tls_only

# TLS 1.2+ with TLS 1.3 preferred (AWS's recommended policy for ALBs).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ANYWHERE = "0.0.0.0/0"
# The header the API used to take a caller's word for; header names are case-insensitive (WAF wants them
# in lower case).
CLIENT_ID_HEADER = "x-client-id"
# What API Gateway's parameter mapping `remove:` takes as its value (an empty quoted string, as AWS
# stores it; a bare "" is what the provider sends to delete a mapping).
REMOVE = "''"
# Open in the API (no key needed) but not public: Prometheus's scrape path, and the detailed readiness
# (each dependency's state and exception text; the public /readyz says ready or not, nothing more).
METRICS_PATH = "/metrics"
READINESS_DETAILS_PATH = "/readyz/details"


def _problem(status: int, title: str, detail: str) -> str:
    """An RFC 9457 problem document for a WAF custom response (WAF sets the content type itself:
    application/json, it cannot send application/problem+json)."""
    return json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})


# WAF custom response bodies: key -> (status, body).
CLIENT_ID_REFUSED = "client-id-header"
METRICS_REFUSED = "metrics-not-public"
READINESS_DETAILS_REFUSED = "readiness-details-not-public"
RESPONSES = {
    CLIENT_ID_REFUSED: (
        400,
        _problem(
            400,
            "Bad Request",
            "X-Client-Id is not accepted: the caller is the client of its API key "
            "(Authorization: Bearer <key>). Send the request without X-Client-Id.",
        ),
    ),
    METRICS_REFUSED: (
        403,
        _problem(403, "Forbidden", "/metrics is served to the monitoring networks only."),
    ),
    READINESS_DETAILS_REFUSED: (
        403,
        _problem(403, "Forbidden", "/readyz/details is served to the monitoring networks only."),
    ),
}


@dataclass(frozen=True)
class EdgeArgs:
    network: Network
    fqdn: str
    hosted_zone_id: str
    node_port: int
    health_check_path: str
    waf_rate_limit: int
    access_log_retention_days: int
    production: bool
    # Who may read /metrics and /readyz/details through the ALB: the on-prem networks (over the VPN, to
    # the ALB's private addresses). Never the VPC: API Gateway's VPC link reaches the ALB from the VPC's
    # private subnets.
    monitoring_cidrs: tuple[str, ...]


class Edge(Component):
    MODULE = "edge"

    def __init__(
        self, name: str, args: EdgeArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        net = args.network
        logs = self._access_log_bucket(args.access_log_retention_days)
        certificate_arn = self._certificate(args.fqdn, args.hosted_zone_id)

        sg_name = self.child("alb")
        self.security_group = aws.ec2.SecurityGroup(
            sg_name,
            vpc_id=net.vpc.id,
            description="Public HTTPS listener of the API (and its HTTP redirect)",
            tags=tags(sg_name),
            opts=self.opts(),
        )
        # The only 0.0.0.0/0 rules of the stack: the public listener and its redirect.
        for port in (443, 80):
            aws.vpc.SecurityGroupIngressRule(
                f"{sg_name}-in-{port}",
                security_group_id=self.security_group.id,
                cidr_ipv4=ANYWHERE,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"public {port}",
                tags=tags(f"{sg_name}-in-{port}"),
                opts=self.opts(parent=self.security_group),
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{sg_name}-out-nodes",
            security_group_id=self.security_group.id,
            cidr_ipv4=net.cidr,
            ip_protocol="tcp",
            from_port=args.node_port,
            to_port=args.node_port,
            description="to the API's NodePort on the cluster nodes",
            tags=tags(f"{sg_name}-out-nodes"),
            opts=self.opts(parent=self.security_group),
        )

        lb_name = self.child("alb")
        self.load_balancer = aws.lb.LoadBalancer(
            lb_name,
            load_balancer_type="application",
            internal=False,
            security_groups=[self.security_group.id],
            subnets=net.public_subnet_ids,
            drop_invalid_header_fields=True,
            enable_http2=True,
            enable_deletion_protection=args.production,
            idle_timeout=60,
            access_logs={"bucket": logs.bucket, "prefix": "alb", "enabled": True},
            tags=tags(lb_name),
            opts=self.opts(depends_on=[self._log_policy]),
        )
        tg_name = self.child("api")
        self.target_group = aws.lb.TargetGroup(
            tg_name,
            vpc_id=net.vpc.id,
            target_type="instance",
            port=args.node_port,
            protocol="HTTP",
            deregistration_delay=30,
            health_check={
                "path": args.health_check_path,
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 10,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 2,
            },
            tags=tags(tg_name),
            opts=self.opts(),
        )
        self.https_listener = aws.lb.Listener(
            self.child("https"),
            load_balancer_arn=self.load_balancer.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=SSL_POLICY,
            certificate_arn=certificate_arn,
            default_actions=[{"type": "forward", "target_group_arn": self.target_group.arn}],
            tags=tags(self.child("https")),
            opts=self.opts(parent=self.load_balancer),
        )
        aws.lb.Listener(
            self.child("http-redirect"),
            load_balancer_arn=self.load_balancer.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {
                    "type": "redirect",
                    "redirect": {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"},
                }
            ],
            tags=tags(self.child("http-redirect")),
            opts=self.opts(parent=self.load_balancer),
        )
        self._waf(args.waf_rate_limit, args.monitoring_cidrs)
        self._api_gateway(net, args.fqdn)
        self.dns_name = self.load_balancer.dns_name
        self.zone_id = self.load_balancer.zone_id
        self.register_outputs(
            {
                "albDnsName": self.dns_name,
                "albZoneId": self.zone_id,
                "targetGroupArn": self.target_group.arn,
                "apiGatewayUrl": self.api_gateway_url,
                "accessLogBucket": logs.bucket,
            }
        )

    def _access_log_bucket(self, retention_days: int) -> aws.s3.Bucket:
        name = self.child("access-logs")
        bucket = aws.s3.Bucket(name, force_destroy=False, tags=self.tags(name), opts=self.opts())
        child = self.opts(parent=bucket)
        private_bucket(self, name, bucket)
        # ALB access logs only support S3-managed keys (SSE-S3), not KMS.
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": retention_days},
                }
            ],
            opts=child,
        )
        # Regions opened before August 2022 deliver as the regional ELB account, newer ones as the
        # log-delivery service principal: grant both (the provider's data source knows the account).
        elb_account = aws.elb.get_service_account_output()
        policy = pulumi.Output.all(bucket.arn, elb_account.arn).apply(
            lambda a: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AlbLogDelivery",
                            "Effect": "Allow",
                            "Principal": {
                                "AWS": a[1],
                                "Service": "logdelivery.elasticloadbalancing.amazonaws.com",
                            },
                            "Action": "s3:PutObject",
                            "Resource": f"{a[0]}/alb/AWSLogs/*",
                        },
                        tls_only(a[0]),
                    ],
                }
            )
        )
        self._log_policy = aws.s3.BucketPolicy(name, bucket=bucket.id, policy=policy, opts=child)
        return bucket

    def _certificate(self, fqdn: str, zone_id: str) -> pulumi.Output[str]:
        name = self.child("certificate")
        cert = aws.acm.Certificate(
            name,
            domain_name=fqdn,
            validation_method="DNS",
            key_algorithm="EC_prime256v1",
            tags=self.tags(name),
            opts=self.opts(),
        )
        option = cert.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-validation",
            zone_id=zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=300,
            allow_overwrite=True,
            opts=self.opts(parent=cert),
        )
        validation = aws.acm.CertificateValidation(
            name, certificate_arn=cert.arn, validation_record_fqdns=[record.fqdn], opts=self.opts(parent=cert)
        )
        return validation.certificate_arn

    def _waf(self, limit: int, monitoring_cidrs: tuple[str, ...]) -> None:
        """The web ACL of the ALB. It sees every request of both public paths (API Gateway's too, as they
        arrive from the VPC link): a per-IP rate limit, a request carrying X-Client-Id refused, /metrics
        and /readyz/details refused unless they come from the monitoring networks."""
        name = self.child("waf")
        metric = name.replace("-", "")
        monitoring = aws.wafv2.IpSet(
            f"{name}-monitoring",
            scope="REGIONAL",
            ip_address_version="IPV4",
            addresses=list(monitoring_cidrs),
            description="Networks that may read /metrics and /readyz/details through the ALB (on-prem, VPN)",
            tags=self.tags(f"{name}-monitoring"),
            opts=self.opts(),
        )

        def visibility(suffix: str) -> aws.wafv2.WebAclVisibilityConfigArgsDict:
            return {
                "cloudwatch_metrics_enabled": True,
                "metric_name": f"{metric}{suffix}",
                "sampled_requests_enabled": True,
            }

        def refuse(key: str) -> aws.wafv2.WebAclRuleActionArgsDict:
            status = RESPONSES[key][0]
            return {"block": {"custom_response": {"response_code": status, "custom_response_body_key": key}}}

        def only_from_monitoring(
            rule: str, priority: int, path: str, key: str, tag: str
        ) -> aws.wafv2.WebAclRuleArgsDict:
            # The path decoded and normalised as the API's router sees it (/%6detrics, //metrics), matched as
            # a prefix (/metrics/, /readyz/details/).
            return {
                "name": rule,
                "priority": priority,
                "action": refuse(key),
                "statement": {
                    "and_statement": {
                        "statements": [
                            {
                                "byte_match_statement": {
                                    "field_to_match": {"uri_path": {}},
                                    "positional_constraint": "STARTS_WITH",
                                    "search_string": path,
                                    "text_transformations": [
                                        {"priority": 0, "type": "URL_DECODE"},
                                        {"priority": 1, "type": "NORMALIZE_PATH"},
                                    ],
                                }
                            },
                            {
                                "not_statement": {
                                    "statement": {"ip_set_reference_statement": {"arn": monitoring.arn}}
                                }
                            },
                        ]
                    }
                },
                "visibility_config": visibility(tag),
            }

        acl = aws.wafv2.WebAcl(
            name,
            scope="REGIONAL",
            default_action={"allow": {}},
            custom_response_bodies=[
                {"key": key, "content": body, "content_type": "APPLICATION_JSON"}
                for key, (_, body) in RESPONSES.items()
            ],
            rules=[
                {
                    "name": "rate-limit-per-ip",
                    "priority": 1,
                    "action": {"block": {}},
                    "statement": {"rate_based_statement": {"limit": limit, "aggregate_key_type": "IP"}},
                    "visibility_config": visibility("RateLimit"),
                },
                {
                    # The ALB forwards every request header and has no action that removes one: a request
                    # naming its own client is refused (the API would ignore the header; the edge makes
                    # sure it never even reaches it, as the on-prem gateway does by removing it).
                    "name": "refuse-client-id-header",
                    "priority": 2,
                    "action": refuse(CLIENT_ID_REFUSED),
                    "statement": {
                        "size_constraint_statement": {
                            "field_to_match": {"single_header": {"name": CLIENT_ID_HEADER}},
                            "comparison_operator": "GT",
                            "size": 0,
                            "text_transformations": [{"priority": 0, "type": "NONE"}],
                        }
                    },
                    "visibility_config": visibility("ClientIdHeader"),
                },
                only_from_monitoring(
                    "metrics-only-from-monitoring", 3, METRICS_PATH, METRICS_REFUSED, "MetricsNotPublic"
                ),
                only_from_monitoring(
                    "readiness-details-only-from-monitoring",
                    4,
                    READINESS_DETAILS_PATH,
                    READINESS_DETAILS_REFUSED,
                    "ReadinessDetailsNotPublic",
                ),
            ],
            visibility_config=visibility(""),
            tags=self.tags(name),
            opts=self.opts(),
        )
        aws.wafv2.WebAclAssociation(
            name, resource_arn=self.load_balancer.arn, web_acl_arn=acl.arn, opts=self.opts(parent=acl)
        )

    def _api_gateway(self, net: Network, fqdn: str) -> None:
        name = self.child("http-api")
        sg = aws.ec2.SecurityGroup(
            f"{name}-link",
            vpc_id=net.vpc.id,
            description="API Gateway VPC link to the ALB",
            tags=self.tags(f"{name}-link"),
            opts=self.opts(),
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-link-out",
            security_group_id=sg.id,
            referenced_security_group_id=self.security_group.id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="to the ALB's HTTPS listener",
            tags=self.tags(f"{name}-link-out"),
            opts=self.opts(parent=sg),
        )
        link = aws.apigatewayv2.VpcLink(
            name,
            subnet_ids=net.private_subnet_ids,
            security_group_ids=[sg.id],
            tags=self.tags(name),
            opts=self.opts(),
        )
        api = aws.apigatewayv2.Api(
            name,
            protocol_type="HTTP",
            description="Puente API (cloud site)",
            tags=self.tags(name),
            opts=self.opts(),
        )
        integration = aws.apigatewayv2.Integration(
            name,
            api_id=api.id,
            integration_type="HTTP_PROXY",
            integration_method="ANY",
            connection_type="VPC_LINK",
            connection_id=link.id,
            integration_uri=self.https_listener.arn,
            payload_format_version="1.0",
            tls_config={"server_name_to_verify": fqdn},
            request_parameters={
                # Without this the stage name would prefix every path sent to the ALB.
                "overwrite:path": "$request.path",
                # A client's own X-Client-Id never reaches the API (the on-prem gateway removes it too).
                # Authorization is not mapped: it is a reserved header API Gateway passes on unchanged.
                f"remove:header.{CLIENT_ID_HEADER}": REMOVE,
            },
            opts=self.opts(parent=api),
        )
        # The only route: every method and path, to the API. No authorizer here: the API checks the key
        # itself, against its one key store (an authorizer would be a second check to keep in step); no
        # route answers on the API's behalf.
        aws.apigatewayv2.Route(
            name,
            api_id=api.id,
            route_key="$default",
            authorization_type="NONE",
            target=integration.id.apply(lambda i: f"integrations/{i}"),
            opts=self.opts(parent=api),
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-access",
            retention_in_days=90,
            tags=self.tags(f"{name}-access"),
            opts=self.opts(parent=api),
        )
        stage = aws.apigatewayv2.Stage(
            name,
            api_id=api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings={"throttling_burst_limit": 500, "throttling_rate_limit": 1000},
            access_log_settings={
                "destination_arn": log_group.arn,
                "format": json.dumps(
                    {
                        "requestId": "$context.requestId",
                        "ip": "$context.identity.sourceIp",
                        "route": "$context.routeKey",
                        "status": "$context.status",
                        "latency": "$context.integrationLatency",
                    }
                ),
            },
            tags=self.tags(name),
            opts=self.opts(parent=api),
        )
        self.api_gateway_url = stage.invoke_url
