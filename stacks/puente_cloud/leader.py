"""The leader endpoint: an internal Network Load Balancer in front of every Patroni member, on both sites.

The AWS-native twin of the lab's HAProxy PostgreSQL frontends (roles/haproxy): the cloud API's database URL
names this NLB, never a fixed member, so writes reach the leader wherever Patroni put it.

- write listener :5432 -> members whose Patroni REST API (HTTPS :8008) answers 200 on `GET /primary`
  (the leader);
- read listener :5433 -> members answering 200 on `GET /read-only-sync` (the leader or the synchronous
  standby: both hold every acknowledged commit), forwarded to their PostgreSQL port 5432.

Targets are IP targets: the cloud members (in the VPC) and the on-prem members from config (outside the VPC,
reached over the VPN: availability zone "all", cross-zone load balancing on). docs/CLOUD.md says what an NLB
does differently from HAProxy (fail-open, detection time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .network import Network

POSTGRES_PORT = 5432
READ_PORT = 5433
PATRONI_REST_PORT = 8008
# (listener port, Patroni check path): the lab's haproxy_postgresql_check_path / _read_check_path.
LISTENERS = {"write": (POSTGRES_PORT, "/primary"), "read": (READ_PORT, "/read-only-sync")}
# The fastest an NLB checks: every 5 s, 2 failures to mark a target down (the lab's HAProxy: 1 s x 3).
HEALTH_CHECK_INTERVAL_SECONDS = 5
HEALTH_CHECK_TIMEOUT_SECONDS = 4
HEALTH_CHECK_THRESHOLD = 2
# A member removed from the stack: its sessions are cut after this long instead of lingering 300 s.
DEREGISTRATION_DELAY_SECONDS = 10


@dataclass(frozen=True)
class LeaderEndpointArgs:
    network: Network
    client_security_group_id: pulumi.Input[str]  # the API's pods (the EKS cluster security group)
    cloud_members: Sequence[pulumi.Input[str]]  # private addresses of the cloud Patroni members
    onprem_members: Sequence[str]  # private addresses of the on-prem members, over the VPN


class LeaderEndpoint(Component):
    MODULE = "data"

    def __init__(
        self, name: str, args: LeaderEndpointArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        net = args.network
        sg_name = self.child("nlb")
        self.security_group = aws.ec2.SecurityGroup(
            sg_name,
            vpc_id=net.vpc.id,
            description="Leader endpoint NLB: the API's pods in, the Patroni members out",
            tags=tags(sg_name),
            opts=self.opts(),
        )
        for port in (POSTGRES_PORT, READ_PORT):
            self.sg_rule(
                "in",
                f"{sg_name}-in-{port}",
                self.security_group,
                (port, port),
                f"PostgreSQL {'writes' if port == POSTGRES_PORT else 'reads'} from the API pods",
                referenced_security_group_id=args.client_security_group_id,
            )
        for i, cidr in enumerate([net.cidr, *net.onprem_cidrs]):
            for port, what in ((POSTGRES_PORT, "PostgreSQL"), (PATRONI_REST_PORT, "Patroni health checks")):
                self.sg_rule(
                    "out",
                    f"{sg_name}-out-{port}-{i}",
                    self.security_group,
                    (port, port),
                    f"{what} to the members in {cidr}",
                    cidr_ipv4=cidr,
                )
        lb_name = self.child("nlb")
        self.load_balancer = aws.lb.LoadBalancer(
            lb_name,
            load_balancer_type="network",
            internal=True,
            subnets=net.private_subnet_ids,
            security_groups=[self.security_group.id],
            # On-prem targets are in zone "all": every NLB node must reach every target.
            enable_cross_zone_load_balancing=True,
            tags=tags(lb_name),
            opts=self.opts(),
        )
        self.dns_name = self.load_balancer.dns_name
        self.target_groups: dict[str, aws.lb.TargetGroup] = {}
        for role, (port, path) in LISTENERS.items():
            self.target_groups[role] = self._listener(role, port, path, net, args)
        self.register_outputs(
            {
                "dnsName": self.dns_name,
                "writePort": POSTGRES_PORT,
                "readPort": READ_PORT,
                "onpremMembers": list(args.onprem_members),
            }
        )

    def _listener(
        self, role: str, port: int, path: str, net: Network, args: LeaderEndpointArgs
    ) -> aws.lb.TargetGroup:
        name = self.child(role)
        group = aws.lb.TargetGroup(
            name,
            port=POSTGRES_PORT,
            protocol="TCP",
            target_type="ip",
            vpc_id=net.vpc.id,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                # Patroni's REST API is HTTPS only (roles/postgresql). An NLB's HTTPS check does not
                # validate the certificate (AWS); the on-prem HAProxy's checks do.
                protocol="HTTPS",
                port=str(PATRONI_REST_PORT),
                path=path,
                matcher="200",
                interval=HEALTH_CHECK_INTERVAL_SECONDS,
                timeout=HEALTH_CHECK_TIMEOUT_SECONDS,
                healthy_threshold=HEALTH_CHECK_THRESHOLD,
                unhealthy_threshold=HEALTH_CHECK_THRESHOLD,
            ),
            # HAProxy's `on-marked-down shutdown-sessions`: sessions on a member that stops passing the
            # check (an old leader) are reset, not left writing into a demoted server.
            target_health_states=[{"enable_unhealthy_connection_termination": True}],
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            connection_termination=True,
            tags=self.tags(name),
            opts=self.opts(),
        )
        # (name suffix, address, zone): zone "all" = outside the VPC; inside it AWS finds the zone itself
        targets: list[tuple[str, pulumi.Input[str], str | None]] = [
            (f"cloud{i}", ip, None) for i, ip in enumerate(args.cloud_members)
        ]
        targets += [(f"onprem{i}", ip, "all") for i, ip in enumerate(args.onprem_members)]
        for suffix, ip, zone in targets:
            aws.lb.TargetGroupAttachment(
                f"{name}-{suffix}",
                target_group_arn=group.arn,
                target_id=ip,
                port=POSTGRES_PORT,
                availability_zone=zone,
                opts=self.opts(parent=group),
            )
        aws.lb.Listener(
            name,
            load_balancer_arn=self.load_balancer.arn,
            port=port,
            protocol="TCP",
            default_actions=[{"type": "forward", "target_group_arn": group.arn}],
            tags=self.tags(name),
            opts=self.opts(parent=self.load_balancer),
        )
        return group
