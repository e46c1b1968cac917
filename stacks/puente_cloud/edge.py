"""Edge: the public ALB (HTTPS only, ACM, HTTP->HTTPS redirect, access logs), WAF, API Gateway HTTP API."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .network import Network

# TLS 1.2+ with TLS 1.3 preferred (AWS's recommended policy for ALBs).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ANYWHERE = "0.0.0.0/0"


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
        self._waf(args.waf_rate_limit)
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
        aws.s3.BucketPublicAccessBlock(
            name,
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
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
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [a[0], f"{a[0]}/*"],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
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

    def _waf(self, limit: int) -> None:
        name = self.child("waf")
        metric = name.replace("-", "")
        acl = aws.wafv2.WebAcl(
            name,
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=[
                {
                    "name": "rate-limit-per-ip",
                    "priority": 1,
                    "action": {"block": {}},
                    "statement": {"rate_based_statement": {"limit": limit, "aggregate_key_type": "IP"}},
                    "visibility_config": {
                        "cloudwatch_metrics_enabled": True,
                        "metric_name": f"{metric}RateLimit",
                        "sampled_requests_enabled": True,
                    },
                }
            ],
            visibility_config={
                "cloudwatch_metrics_enabled": True,
                "metric_name": metric,
                "sampled_requests_enabled": True,
            },
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
            # Without this the stage name would prefix every path sent to the ALB.
            request_parameters={"overwrite:path": "$request.path"},
            opts=self.opts(parent=api),
        )
        aws.apigatewayv2.Route(
            name,
            api_id=api.id,
            route_key="$default",
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
