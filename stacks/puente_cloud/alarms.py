"""Alarms: CloudWatch alarms on what fails the cloud site, each notifying a KMS-encrypted SNS topic when it
fires and when it clears.

Watched: the dead-letter queue (depth, oldest message), each Route 53 health check, the ALB (5xx share,
unhealthy targets), the database (RDS instance, or the Patroni members' status checks and the leader
endpoint having no leader) and each VPN tunnel's state. Route 53 publishes health-check metrics in
us-east-1 only, and an alarm notifies topics of its own region only: those alarms, their topic and its key
live in us-east-1 (pulumi-aws 7's per-resource `region`, no second provider).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .config import AlarmsConfig
from .data import Database
from .leader import LeaderEndpoint
from .security import kms_key

# Where Route 53 publishes its health checks' metrics (AWS/Route53), whatever the stack's region.
HEALTH_CHECK_METRICS_REGION = "us-east-1"
# CloudWatch publishes to the topic itself, so it must be able to use the topic's key.
CLOUDWATCH = "cloudwatch.amazonaws.com"
GIB = 1024**3


@dataclass(frozen=True)
class AlarmsArgs:
    config: AlarmsConfig
    region: str
    dead_letter_queue: aws.sqs.Queue
    load_balancer: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    health_check_ids: Mapping[str, pulumi.Input[str]]
    database: Database
    allocated_storage_gb: int
    leader: LeaderEndpoint | None
    vpn: aws.ec2.VpnConnection


class Alarms(Component):
    MODULE = "monitoring"

    def __init__(
        self, name: str, args: AlarmsArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        cfg = self.config = args.config
        self.topic = self._topic("topic", None)
        # Route 53's metrics are in us-east-1; a stack there needs no second topic.
        checks_region = None if args.region == HEALTH_CHECK_METRICS_REGION else HEALTH_CHECK_METRICS_REGION
        self.health_check_topic = (
            self._topic("topic-us-east-1", checks_region) if checks_region else self.topic
        )

        dlq = {"QueueName": args.dead_letter_queue.name}
        self._alarm(
            "dlq-depth",
            "Messages in the dead-letter queue: an event the workers gave up on (redrive it, docs/CLOUD.md)",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions=dlq,
            statistic="Maximum",
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            period=300,
        )
        self._alarm(
            "dlq-age",
            f"A dead-lettered message has waited over {cfg.dead_letter_max_age_seconds} s for a redrive",
            namespace="AWS/SQS",
            metric_name="ApproximateAgeOfOldestMessage",
            dimensions=dlq,
            statistic="Maximum",
            comparison_operator="GreaterThanThreshold",
            threshold=cfg.dead_letter_max_age_seconds,
            period=300,
        )
        for site, check_id in sorted(args.health_check_ids.items()):
            self._alarm(
                f"health-check-{site}",
                f"Route 53's health check of the {site} site fails: DNS fails over away from it",
                topic=self.health_check_topic,
                region=checks_region,
                namespace="AWS/Route53",
                metric_name="HealthCheckStatus",
                dimensions={"HealthCheckId": check_id},
                statistic="Minimum",
                comparison_operator="LessThanThreshold",
                threshold=1,
                period=60,
                treat_missing_data="breaching",
            )
        self._load_balancer(args)
        self._database(args)
        for i, address in enumerate((args.vpn.tunnel1_address, args.vpn.tunnel2_address), start=1):
            self._alarm(
                f"vpn-tunnel{i}",
                f"VPN tunnel {i} to the on-prem site is down (the other tunnel carries the traffic, if up)",
                namespace="AWS/VPN",
                metric_name="TunnelState",
                dimensions={"TunnelIpAddress": address},
                statistic="Maximum",
                comparison_operator="LessThanThreshold",
                threshold=1,
                period=300,
                treat_missing_data="breaching",
            )
        self.register_outputs(
            {
                "topicArn": self.topic.arn,
                "healthCheckTopicArn": self.health_check_topic.arn,
            }
        )

    def _topic(self, suffix: str, region: str | None) -> aws.sns.Topic:
        """An SNS topic encrypted with its own key (which CloudWatch may use), with the subscriptions from
        config. E-mail and https subscribers confirm once (SNS sends them a confirmation)."""
        name = self.child(suffix)
        key = kms_key(
            self, suffix, "Encryption of the alarm notifications", region=region, service_users=(CLOUDWATCH,)
        )
        topic = aws.sns.Topic(
            name, kms_master_key_id=key.arn, region=region, tags=self.tags(name), opts=self.opts()
        )
        endpoints = [("email", e) for e in self.config.email_endpoints]
        endpoints += [("https", u) for u in self.config.https_endpoints]
        for i, (protocol, endpoint) in enumerate(endpoints):
            aws.sns.TopicSubscription(
                f"{name}-{protocol}{i}",
                topic=topic.arn,
                protocol=protocol,
                endpoint=endpoint,
                region=region,
                opts=self.opts(parent=topic),
            )
        return topic

    def _alarm(
        self,
        suffix: str,
        description: str,
        *,
        topic: aws.sns.Topic | None = None,
        evaluation_periods: int = 1,
        treat_missing_data: str = "notBreaching",
        **metric: Any,
    ) -> aws.cloudwatch.MetricAlarm:
        """One alarm, notifying `topic` (the stack region's by default) when it fires and when it clears.
        Named `<project>-<stack>-alarms-<suffix>`: the name is what a notification's reader sees."""
        name = self.child(suffix)
        arn = (topic or self.topic).arn
        return aws.cloudwatch.MetricAlarm(
            name,
            name=self.physical(suffix),
            alarm_description=description,
            actions_enabled=True,
            alarm_actions=[arn],
            ok_actions=[arn],
            evaluation_periods=evaluation_periods,
            treat_missing_data=treat_missing_data,
            tags=self.tags(name),
            opts=self.opts(),
            **metric,
        )

    def _load_balancer(self, args: AlarmsArgs) -> None:
        lb = args.load_balancer.arn_suffix

        def query(id_: str, metric: str) -> dict[str, Any]:
            return {
                "id": id_,
                "return_data": False,
                "metric": {
                    "namespace": "AWS/ApplicationELB",
                    "metric_name": metric,
                    "dimensions": {"LoadBalancer": lb},
                    "period": 60,
                    "stat": "Sum",
                },
            }

        percent = args.config.alb_5xx_percent
        self._alarm(
            "alb-5xx",
            f"Over {percent} % of the API's requests through the ALB answered 5xx (by the ALB or the API), "
            "3 of the last 5 minutes",
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator="GreaterThanThreshold",
            threshold=percent,
            metric_queries=[
                query("elb", "HTTPCode_ELB_5XX_Count"),
                query("api", "HTTPCode_Target_5XX_Count"),
                query("requests", "RequestCount"),
                {
                    "id": "share",
                    "label": "5xx share (%)",
                    "expression": "100 * (FILL(elb, 0) + FILL(api, 0)) / requests",
                    "return_data": True,
                },
            ],
        )
        self._alarm(
            "alb-unhealthy-targets",
            "Nodes of the API's target group fail the ALB's health check (3 minutes)",
            evaluation_periods=3,
            namespace="AWS/ApplicationELB",
            metric_name="UnHealthyHostCount",
            dimensions={"LoadBalancer": lb, "TargetGroup": args.target_group.arn_suffix},
            statistic="Maximum",
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            period=60,
        )

    def _database(self, args: AlarmsArgs) -> None:
        db = args.database
        if db.instance is not None:
            instance = {"DBInstanceIdentifier": db.instance.identifier}
            cpu = args.config.database_cpu_percent
            self._alarm(
                "rds-cpu",
                f"The database's CPU above {cpu} % for 15 minutes",
                evaluation_periods=3,
                namespace="AWS/RDS",
                metric_name="CPUUtilization",
                dimensions=instance,
                statistic="Average",
                comparison_operator="GreaterThanThreshold",
                threshold=cpu,
                period=300,
            )
            self._alarm(
                "rds-free-storage",
                "The database has under 10 % of its allocated storage free",
                namespace="AWS/RDS",
                metric_name="FreeStorageSpace",
                dimensions=instance,
                statistic="Minimum",
                comparison_operator="LessThanThreshold",
                threshold=args.allocated_storage_gb * GIB // 10,
                period=300,
            )
            self._alarm(
                "rds-unavailable",
                "The database reports no data: the instance is down, stopped or unreachable",
                evaluation_periods=3,
                namespace="AWS/RDS",
                metric_name="DatabaseConnections",
                dimensions=instance,
                statistic="SampleCount",
                comparison_operator="LessThanThreshold",
                threshold=1,
                period=60,
                treat_missing_data="breaching",
            )
        for i, member in enumerate(db.members, start=1):
            for check, what in (("System", "AWS's host or network"), ("Instance", "the VM itself")):
                self._alarm(
                    f"db{i}-status-{check.lower()}",
                    f"Cloud Patroni member cloud-db{i} fails EC2's {check.lower()} status check ({what}); "
                    "no data = stopped or terminated",
                    evaluation_periods=2,
                    namespace="AWS/EC2",
                    metric_name=f"StatusCheckFailed_{check}",
                    dimensions={"InstanceId": member.id},
                    statistic="Maximum",
                    comparison_operator="GreaterThanOrEqualToThreshold",
                    threshold=1,
                    period=60,
                    treat_missing_data="breaching",
                )
        if args.leader is not None:
            self._alarm(
                "leader-endpoint-no-leader",
                "The cloud API's leader endpoint finds no Patroni leader on either site (2 minutes): cloud "
                "writes fail",
                evaluation_periods=2,
                namespace="AWS/NetworkELB",
                metric_name="HealthyHostCount",
                dimensions={
                    "LoadBalancer": args.leader.load_balancer.arn_suffix,
                    "TargetGroup": args.leader.target_groups["write"].arn_suffix,
                },
                statistic="Minimum",
                comparison_operator="LessThanThreshold",
                threshold=1,
                period=60,
                treat_missing_data="breaching",
            )
