"""Network: VPC over the configured zones, public/private subnets, NAT, endpoints, VPN to on-prem."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .config import NetworkConfig

# The IPsec parameters of both tunnels, set explicitly (AWS's defaults accept weaker ones) to what AWS's
# site-to-site VPN accepts and strongSwan speaks: IKEv2 only; AES-256-GCM, or AES-256 with SHA-256;
# DH groups 14, 19, 20 (MODP-2048, ECP-256, ECP-384); dead peer detection after 30 s, then clear;
# rekeying 540 s before the SA expires, fuzzed by up to 100 %. Only the customer gateway initiates, and it
# restarts a dead or closed tunnel (AWS's defaults, startup "add"): two initiators cross and double the IKE
# SAs at every restart (roles/vpn/README.md).
TUNNEL_OPTIONS: dict[str, Any] = {
    "ike_versions": ["ikev2"],
    "phase1_encryption_algorithms": ["AES256-GCM-16", "AES256"],
    "phase1_integrity_algorithms": ["SHA2-256"],
    "phase1_dh_group_numbers": [14, 19, 20],
    "phase1_lifetime_seconds": 28800,
    "phase2_encryption_algorithms": ["AES256-GCM-16", "AES256"],
    "phase2_integrity_algorithms": ["SHA2-256"],
    "phase2_dh_group_numbers": [14, 19, 20],
    "phase2_lifetime_seconds": 3600,
    "dpd_timeout_seconds": 30,
    "dpd_timeout_action": "clear",
    "rekey_margin_time_seconds": 540,
    "rekey_fuzz_percentage": 100,
    "replay_window_size": 1024,
    "startup_action": "add",
}
# Interface endpoints that let private nodes pull images and talk to AWS APIs without the internet.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts", "logs", "sqs", "ec2", "kms")


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    region: str


class Network(Component):
    MODULE = "network"

    def __init__(
        self, name: str, args: NetworkArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        cfg = args.config
        self.cidr = cfg.vpc_cidr
        self.onprem_cidrs = cfg.onprem_cidrs
        vpc_name = self.child("vpc")
        self.vpc = aws.ec2.Vpc(
            vpc_name,
            cidr_block=cfg.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(vpc_name),
            opts=self.opts(),
        )
        # Each zone gets one public and one private subnet: the VPC split in 16, public first half.
        blocks = list(ipaddress.ip_network(cfg.vpc_cidr).subnets(prefixlen_diff=4))
        igw_name = self.child("igw")
        igw = aws.ec2.InternetGateway(igw_name, vpc_id=self.vpc.id, tags=tags(igw_name), opts=self.opts())
        public_rt_name = self.child("public-rt")
        public_rt = aws.ec2.RouteTable(
            public_rt_name, vpc_id=self.vpc.id, tags=tags(public_rt_name), opts=self.opts()
        )
        aws.ec2.Route(
            self.child("public-default"),
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=self.opts(parent=public_rt),
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        self.private_route_tables: list[aws.ec2.RouteTable] = []
        nat_ids: list[pulumi.Output[str]] = []
        for i, az in enumerate(cfg.availability_zones):
            pub_name = self.child(f"public-{az}")
            pub = aws.ec2.Subnet(
                pub_name,
                vpc_id=self.vpc.id,
                availability_zone=az,
                cidr_block=str(blocks[i]),
                map_public_ip_on_launch=False,
                tags=tags(pub_name, Tier="public"),
                opts=self.opts(),
            )
            aws.ec2.RouteTableAssociation(
                pub_name, subnet_id=pub.id, route_table_id=public_rt.id, opts=self.opts(parent=pub)
            )
            self.public_subnets.append(pub)
            if cfg.nat_gateway_per_az or i == 0:
                nat_name = self.child(f"nat-{az}")
                eip = aws.ec2.Eip(nat_name, domain="vpc", tags=tags(nat_name), opts=self.opts())
                nat = aws.ec2.NatGateway(
                    nat_name,
                    allocation_id=eip.id,
                    subnet_id=pub.id,
                    tags=tags(nat_name),
                    opts=self.opts(depends_on=[igw]),
                )
                nat_ids.append(nat.id)
            priv_name = self.child(f"private-{az}")
            priv = aws.ec2.Subnet(
                priv_name,
                vpc_id=self.vpc.id,
                availability_zone=az,
                cidr_block=str(blocks[8 + i]),
                tags=tags(priv_name, Tier="private"),
                opts=self.opts(),
            )
            rt = aws.ec2.RouteTable(priv_name, vpc_id=self.vpc.id, tags=tags(priv_name), opts=self.opts())
            aws.ec2.Route(
                f"{priv_name}-default",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat_ids[-1],
                opts=self.opts(parent=rt),
            )
            aws.ec2.RouteTableAssociation(
                priv_name, subnet_id=priv.id, route_table_id=rt.id, opts=self.opts(parent=priv)
            )
            self.private_subnets.append(priv)
            self.private_route_tables.append(rt)
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self._endpoints(args.region, tags)
        self._vpn(cfg, tags)
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
                "vpnConnectionId": self.vpn.id,
                "vpnTunnelAddresses": self.vpn_tunnel_addresses,
                "vpnTunnels": self.vpn_tunnels,
            }
        )

    def _endpoints(self, region: str, tags: Tags) -> None:
        s3_name = self.child("s3-endpoint")
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            s3_name,
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in self.private_route_tables],
            tags=tags(s3_name),
            opts=self.opts(),
        )
        sg_name = self.child("endpoints")
        sg = aws.ec2.SecurityGroup(
            sg_name,
            vpc_id=self.vpc.id,
            description="HTTPS to AWS interface endpoints",
            tags=tags(sg_name),
            opts=self.opts(),
        )
        aws.vpc.SecurityGroupIngressRule(
            sg_name,
            security_group_id=sg.id,
            cidr_ipv4=self.cidr,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS from the VPC",
            tags=tags(sg_name),
            opts=self.opts(parent=sg),
        )
        for service in INTERFACE_ENDPOINTS:
            ep_name = self.child(f"{service.replace('.', '-')}-endpoint")
            aws.ec2.VpcEndpoint(
                ep_name,
                vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[sg.id],
                tags=tags(ep_name),
                opts=self.opts(),
            )

    def _vpn(self, cfg: NetworkConfig, tags: Tags) -> None:
        vgw_name = self.child("vgw")
        vgw = aws.ec2.VpnGateway(vgw_name, vpc_id=self.vpc.id, tags=tags(vgw_name), opts=self.opts())
        cgw_name = self.child("onprem-cgw")
        cgw = aws.ec2.CustomerGateway(
            cgw_name,
            ip_address=cfg.vpn.customer_gateway_ip,
            bgp_asn=str(cfg.vpn.bgp_asn),
            type="ipsec.1",
            tags=tags(cgw_name),
            opts=self.opts(),
        )
        vpn_name = self.child("onprem-vpn")
        # (the options are spread from a table, which the SDK's overloads cannot type)
        self.vpn = aws.ec2.VpnConnection(  # type: ignore[call-overload]
            vpn_name,
            vpn_gateway_id=vgw.id,
            customer_gateway_id=cgw.id,
            type="ipsec.1",
            static_routes_only=cfg.vpn.static_routes_only,
            # the pre-shared keys: AWS generates them (exported as Pulumi secrets, vpnPresharedKeys)
            **{f"tunnel{i}_{option}": value for i in (1, 2) for option, value in TUNNEL_OPTIONS.items()},
            **{f"tunnel{i}_inside_cidr": c for i, c in enumerate(cfg.vpn.tunnel_inside_cidrs, start=1)},
            tags=tags(vpn_name),
            opts=self.opts(),
        )
        if cfg.vpn.static_routes_only:
            for cidr in cfg.onprem_cidrs:
                aws.ec2.VpnConnectionRoute(
                    f"{vpn_name}-{cidr.replace('/', '-')}",
                    vpn_connection_id=self.vpn.id,
                    destination_cidr_block=cidr,
                    opts=self.opts(parent=self.vpn),
                )
        for rt, az in zip(self.private_route_tables, cfg.availability_zones, strict=True):
            aws.ec2.VpnGatewayRoutePropagation(
                self.child(f"vgw-propagation-{az}"),
                vpn_gateway_id=vgw.id,
                route_table_id=rt.id,
                opts=self.opts(parent=vgw),
            )
        self.vpn_tunnel_addresses = pulumi.Output.all(self.vpn.tunnel1_address, self.vpn.tunnel2_address)
        self.vpn_tunnels = pulumi.Output.all(self._tunnel(1), self._tunnel(2))
        keys = pulumi.Output.all(self.vpn.tunnel1_preshared_key, self.vpn.tunnel2_preshared_key)
        self.vpn_preshared_keys: pulumi.Output[list[str]] = pulumi.Output.secret(keys)  # type: ignore[arg-type]

    def _tunnel(self, i: int) -> pulumi.Output[dict[str, object]]:
        """What the on-prem end of tunnel `i` needs, as the provider reports it (not as requested): its
        AWS outside address, inside network and both inside addresses, and every IPsec option."""

        def get(attribute: str) -> pulumi.Output[object]:
            return getattr(self.vpn, f"tunnel{i}_{attribute}")

        return pulumi.Output.all(
            outsideAddress=get("address"),
            insideCidr=get("inside_cidr"),
            # the customer gateway's (on-prem) and the virtual private gateway's (AWS) inside addresses
            onpremInsideAddress=get("cgw_inside_address"),
            awsInsideAddress=get("vgw_inside_address"),
            **{_camel(option): get(option) for option in TUNNEL_OPTIONS},
        ).apply(lambda values: {"tunnel": i, **values})


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(part.capitalize() for part in rest)
