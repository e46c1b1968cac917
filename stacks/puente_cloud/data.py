"""Data: RDS PostgreSQL (Multi-AZ, encrypted, backups) or, with `database.mode: patroni`, the cloud members
of the cross-site Patroni cluster on EC2 (bootstrapped by cloud-init, configured by the Ansible roles)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from puente.templating import render

from .base import Component, Tags
from .config import DatabaseConfig
from .network import Network
from .security import kms_key, service_role

POSTGRES_PORT = 5432
# Ports of a Patroni member: PostgreSQL, Patroni REST (leader checks), etcd client and peer.
PATRONI_PORTS = (
    (POSTGRES_PORT, POSTGRES_PORT, "PostgreSQL"),
    (8008, 8008, "Patroni REST API"),
    (2379, 2380, "etcd client and peer"),
    (22, 22, "SSH for Ansible"),
)
# Debian's official AMIs (https://wiki.debian.org/Cloud/AmazonEC2Image).
DEBIAN_AMI_OWNER = "136693071363"


def _inventory_entry(groups: list[str], host_vars: dict[str, object], address: str) -> dict[str, object]:
    """A cloud member as the Pulumi inventory plugin reads it (plugins/inventory/pulumi_stack.py)."""
    return {"address": address, "groups": groups, "vars": host_vars}


def _member_role(index: int) -> tuple[list[str], dict[str, object]]:
    """Inventory groups and host variables of the index-th cloud member (the lab's proven shape): the
    first one is also the cloud site's etcd member (one vote per site plus the witness, so losing either
    site keeps a DCS majority); the others are `nosync`, so the synchronous standby of a cloud leader is
    always on the other site."""
    if index == 0:
        return ["postgresql", "etcd"], {}
    return ["postgresql"], {"postgresql_patroni_tags": {"nosync": True}}


@dataclass(frozen=True)
class DatabaseArgs:
    config: DatabaseConfig
    network: Network
    client_security_group_id: pulumi.Input[str]
    password: pulumi.Input[str]
    production: bool
    # Patroni mode: the members' instance profile (the backup repository's access) and the S3 gateway
    # endpoint's prefix list (the repository is reached through it, the members have no internet egress).
    instance_profile: pulumi.Input[str] | None = None
    s3_prefix_list_id: pulumi.Input[str] | None = None


class Database(Component):
    """RDS PostgreSQL in RDS mode; in Patroni mode, the EC2 members instead."""

    MODULE = "data"

    def __init__(
        self, name: str, args: DatabaseArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        cfg, net = args.config, args.network
        self.key = kms_key(self, "storage", "Encryption at rest of the API's PostgreSQL data")
        sg_name = self._sg_name = self.child("postgres")
        self.security_group = aws.ec2.SecurityGroup(
            sg_name,
            vpc_id=net.vpc.id,
            description="PostgreSQL: the API's pods and the on-prem site only",
            tags=tags(sg_name),
            opts=self.opts(),
        )
        self._ingress(
            sg_name,
            "api",
            POSTGRES_PORT,
            POSTGRES_PORT,
            "from the API's pods",
            referenced_security_group_id=args.client_security_group_id,
        )
        self.port = POSTGRES_PORT
        self.nodes: pulumi.Output[dict[str, dict[str, object]]] = pulumi.Output.from_input({})
        self.member_addresses: list[pulumi.Output[str]] = []  # the cloud Patroni members' private IPs
        self.members: list[aws.ec2.Instance] = []  # Patroni mode: the cloud members
        self.instance: aws.rds.Instance | None = None  # RDS mode: the instance
        if cfg.mode == "rds":
            self._rds(cfg, net, args)
        else:
            self._patroni(cfg, net, args)
        self.register_outputs(
            {"mode": cfg.mode, "address": self.address, "port": self.port, "nodes": self.nodes}
        )

    def _ingress(
        self,
        sg_name: str,
        suffix: str,
        lo: int,
        hi: int,
        description: str,
        cidr_ipv4: str | None = None,
        referenced_security_group_id: pulumi.Input[str] | None = None,
    ) -> None:
        self.sg_rule(
            "in",
            f"{sg_name}-in-{suffix}",
            self.security_group,
            (lo, hi),
            description,
            cidr_ipv4=cidr_ipv4,
            referenced_security_group_id=referenced_security_group_id,
        )

    def _rds(self, cfg: DatabaseConfig, net: Network, args: DatabaseArgs) -> None:
        for i, cidr in enumerate(cfg.allowed_cidrs):
            self._ingress(
                self._sg_name,
                f"cidr{i}",
                POSTGRES_PORT,
                POSTGRES_PORT,
                f"PostgreSQL from {cidr}",
                cidr_ipv4=cidr,
            )
        name = self.child("postgres")
        subnets = aws.rds.SubnetGroup(
            name, subnet_ids=net.private_subnet_ids, tags=self.tags(name), opts=self.opts()
        )
        major = cfg.engine_version.split(".")[0]
        params = aws.rds.ParameterGroup(
            name,
            family=f"postgres{major}",
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {"name": "log_min_duration_statement", "value": "500"},
            ],
            tags=self.tags(name),
            opts=self.opts(),
        )
        self.instance = aws.rds.Instance(
            name,
            engine="postgres",
            engine_version=cfg.engine_version,
            instance_class=cfg.instance_class,
            allocated_storage=cfg.allocated_storage_gb,
            max_allocated_storage=cfg.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=self.key.arn,
            multi_az=cfg.multi_az,
            db_name=cfg.name,
            username=cfg.username,
            password=args.password,
            port=POSTGRES_PORT,
            db_subnet_group_name=subnets.name,
            parameter_group_name=params.name,
            vpc_security_group_ids=[self.security_group.id],
            publicly_accessible=cfg.publicly_accessible,
            backup_retention_period=cfg.backup_retention_days,
            backup_window="02:00-03:00",
            maintenance_window="sun:03:30-sun:04:30",
            deletion_protection=cfg.deletion_protection,
            skip_final_snapshot=not args.production,
            final_snapshot_identifier=self.physical("postgres-final") if args.production else None,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=self.key.arn,
            enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
            iam_database_authentication_enabled=True,
            tags=self.tags(name),
            opts=self.opts(protect=args.production),
        )
        self.address = self.instance.address

    @property
    def _backup_tag(self) -> str:
        return self.physical("patroni")

    def _snapshots(self, retention_days: int) -> None:
        """backupRetentionDays, as RDS mode honours it: a daily EBS snapshot of every member's volumes
        (Amazon Data Lifecycle Manager, volumes tagged PuenteBackup), each kept that many days. Crash-
        consistent copies of the disks; point-in-time recovery of the database itself is WAL archiving's
        job (pgBackRest, issue 13)."""
        name = self.child("snapshots")
        role = service_role(
            self,
            "snapshots",
            "dlm.amazonaws.com",
            ["arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"],
        )
        aws.dlm.LifecyclePolicy(
            name,
            description=f"Daily snapshots of the Patroni members' volumes, kept {retention_days} days",
            execution_role_arn=role.arn,
            state="ENABLED",
            policy_details={
                "resource_types": ["VOLUME"],
                "target_tags": {"PuenteBackup": self._backup_tag},
                "schedules": [
                    {
                        "name": "daily",
                        "create_rule": {"interval": 24, "interval_unit": "HOURS", "times": "02:00"},
                        "retain_rule": {"interval": retention_days, "interval_unit": "DAYS"},
                        "copy_tags": True,
                    }
                ],
            },
            tags=self.tags(name),
            opts=self.opts(),
        )

    def _patroni(self, cfg: DatabaseConfig, net: Network, args: DatabaseArgs) -> None:
        patroni = cfg.patroni
        assert patroni is not None  # guaranteed by config validation
        sources = [*net.onprem_cidrs, net.cidr]
        for lo, hi, what in PATRONI_PORTS:
            for i, cidr in enumerate(sources):
                if lo == 22 and cidr == net.cidr:
                    continue  # Ansible runs on-prem and comes through the VPN
                self._ingress(self._sg_name, f"{lo}-{i}", lo, hi, f"{what} from {cidr}", cidr_ipv4=cidr)
        for lo, hi, what in PATRONI_PORTS[:3]:
            # Replication, leader checks and etcd quorum go both ways between the sites.
            for i, cidr in enumerate(sources):
                self.sg_rule(
                    "out",
                    f"{self._sg_name}-out-{lo}-{i}",
                    self.security_group,
                    (lo, hi),
                    f"{what} to {cidr}",
                    cidr_ipv4=cidr,
                )
        # No internet egress: Ansible installs PostgreSQL/Patroni/etcd from the package mirrors or
        # proxies listed in config (e.g. the on-prem site's apt cache, reached over the VPN).
        for i, cidr in enumerate(patroni.package_mirror_cidrs):
            for port in (80, 443):
                self.sg_rule(
                    "out",
                    f"{self._sg_name}-out-mirror{i}-{port}",
                    self.security_group,
                    (port, port),
                    f"package mirror {cidr}",
                    cidr_ipv4=cidr,
                )
        if args.s3_prefix_list_id is not None:
            name = f"{self._sg_name}-out-s3"
            aws.vpc.SecurityGroupEgressRule(
                name,
                security_group_id=self.security_group.id,
                prefix_list_id=args.s3_prefix_list_id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="HTTPS to S3 through the VPC's gateway endpoint (the backup repository)",
                tags=self.tags(name),
                opts=self.opts(parent=self.security_group),
            )
        ami = aws.ec2.get_ami_output(
            most_recent=True,
            owners=[DEBIAN_AMI_OWNER],
            filters=[
                {"name": "name", "values": ["debian-12-amd64-*"]},
                {"name": "architecture", "values": ["x86_64"]},
            ],
        )
        nodes: dict[str, pulumi.Output[dict[str, object]]] = {}
        for i in range(patroni.members):
            node = f"cloud-db{i + 1}"
            groups, host_vars = _member_role(i)
            user_data = render(
                "cloud-init/node.yaml.j2",
                {
                    "node_name": node,
                    "ssh_authorized_key": patroni.ssh_public_key,
                    "site": "cloud",
                    "groups": groups,
                },
            )
            instance = aws.ec2.Instance(
                self.child(node),
                ami=ami.id,
                instance_type=patroni.instance_type,
                subnet_id=net.private_subnet_ids[i % len(net.private_subnet_ids)],
                vpc_security_group_ids=[self.security_group.id],
                iam_instance_profile=args.instance_profile,
                user_data=user_data,
                user_data_replace_on_change=False,
                metadata_options={"http_tokens": "required", "http_endpoint": "enabled"},
                root_block_device={
                    "volume_size": patroni.volume_gb,
                    "volume_type": "gp3",
                    "encrypted": True,
                    "kms_key_id": self.key.arn,
                },
                tags=self.tags(self.child(node), PuenteNode=node),
                volume_tags=self.tags(self.child(node), PuenteNode=node, PuenteBackup=self._backup_tag),
                # deletionProtection, as RDS mode honours it: no API termination, and in production
                # Pulumi refuses to delete the member (`protect`), as it does the RDS instance.
                disable_api_termination=cfg.deletion_protection,
                # A newer Debian AMI must not replace a database member on the next `pulumi up`.
                opts=self.opts(ignore_changes=["ami"], protect=args.production),
            )
            self.member_addresses.append(instance.private_ip)
            self.members.append(instance)
            nodes[node] = instance.private_ip.apply(functools.partial(_inventory_entry, groups, host_vars))
        self.nodes = pulumi.Output.all(**nodes)
        self._snapshots(cfg.backup_retention_days)
        # The members' own address; the API connects through the leader endpoint instead (leader.py).
        self.address = self.member_addresses[0]
