"""DNS: Route 53 failover between the sites, built from templates/failover/policy.yml.

PRIMARY = the on-prem gateway (A record + health check on its public address),
SECONDARY = the cloud edge (alias to the ALB with evaluate-target-health + its own health check).
A cloud-only stack (no on-prem gateway address) gets the cloud half only: the name is a plain alias to the
ALB, with the same health check on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .failover import FailoverPolicy


@dataclass(frozen=True)
class FailoverDnsArgs:
    policy: FailoverPolicy
    zone_id: str
    fqdn: str
    onprem_gateway_address: str  # "" = cloud-only
    alb_dns_name: pulumi.Input[str]
    alb_zone_id: pulumi.Input[str]
    checker_regions: tuple[str, ...]


class FailoverDns(Component):
    MODULE = "dns"

    def __init__(
        self, name: str, args: FailoverDnsArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        p = args.policy
        onprem_name, cloud_name = self.child("onprem"), self.child("cloud")
        cloud_check = self._health_check(cloud_name, "cloud", args, fqdn=args.alb_dns_name)
        alias = [
            aws.route53.RecordAliasArgs(
                name=args.alb_dns_name, zone_id=args.alb_zone_id, evaluate_target_health=True
            )
        ]
        if not args.onprem_gateway_address:
            aws.route53.Record(
                cloud_name,
                zone_id=args.zone_id,
                name=args.fqdn,
                type=p.record_type,
                aliases=alias,
                opts=self.opts(parent=cloud_check),
            )
            self.health_check_ids = {"cloud": cloud_check.id}
            self.register_outputs({"fqdn": args.fqdn, "healthCheckIds": self.health_check_ids})
            return
        onprem_check = self._health_check(
            onprem_name, "onprem", args, fqdn=args.fqdn, ip_address=args.onprem_gateway_address
        )
        aws.route53.Record(
            onprem_name,
            zone_id=args.zone_id,
            name=args.fqdn,
            type=p.record_type,
            ttl=p.ttl,
            records=[args.onprem_gateway_address],
            set_identifier="onprem",
            failover_routing_policies=[{"type": "PRIMARY"}],
            health_check_id=onprem_check.id,
            opts=self.opts(parent=onprem_check),
        )
        aws.route53.Record(
            cloud_name,
            zone_id=args.zone_id,
            name=args.fqdn,
            type=p.record_type,
            set_identifier="cloud",
            failover_routing_policies=[{"type": "SECONDARY"}],
            health_check_id=cloud_check.id,
            aliases=alias,
            opts=self.opts(parent=cloud_check),
        )
        self.health_check_ids = {"onprem": onprem_check.id, "cloud": cloud_check.id}
        self.register_outputs({"fqdn": args.fqdn, "healthCheckIds": self.health_check_ids})

    def _health_check(
        self,
        name: str,
        site: str,
        args: FailoverDnsArgs,
        fqdn: pulumi.Input[str],
        ip_address: str | None = None,
    ) -> aws.route53.HealthCheck:
        """One check per site, both shaped by the policy file: what "up" means is the same everywhere."""
        p = args.policy
        return aws.route53.HealthCheck(
            name,
            aws.route53.HealthCheckArgs(
                type=p.route53_type,
                port=p.port,
                resource_path=p.path,
                request_interval=p.interval_seconds,
                failure_threshold=p.failure_threshold,
                regions=list(args.checker_regions) or None,
                fqdn=fqdn,
                ip_address=ip_address,
                enable_sni=p.protocol == "https",
                tags=self.tags(name, Site=site),
            ),
            opts=self.opts(),
        )
