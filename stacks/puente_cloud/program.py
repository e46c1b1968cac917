"""Wires the components together and returns the stack outputs. Called by stacks/__main__.py."""

from __future__ import annotations

from typing import Any

import pulumi

from . import outputs as out
from .alarms import Alarms, AlarmsArgs
from .api_service import DATABASE_CA_FILE, NAMESPACE, SERVICE_ACCOUNT, ApiService, ApiServiceArgs
from .backup import BackupRepository, BackupRepositoryArgs
from .base import Tags
from .compute import Cluster, ClusterArgs
from .config import StackConfig
from .data import Database, DatabaseArgs
from .dns import FailoverDns, FailoverDnsArgs
from .edge import Edge, EdgeArgs
from .failover import FailoverPolicy
from .leader import READ_PORT, LeaderEndpoint, LeaderEndpointArgs
from .network import Network, NetworkArgs
from .queue import Queue, QueueArgs


def build(cfg: StackConfig, policy: FailoverPolicy) -> dict[str, Any]:
    """Declare every resource of the cloud site; return {output key: value}."""
    tags = Tags({**cfg.tags, "Project": cfg.project, "Environment": cfg.environment, "ManagedBy": "pulumi"})
    fqdn = f"{policy.record_name}.{cfg.edge.zone_name}"

    network = Network("network", NetworkArgs(cfg.network, cfg.region), tags)
    queue = Queue("queue", QueueArgs(cfg.queue, f"{cfg.project}-{cfg.stack}-events"), tags)
    edge = Edge(
        "edge",
        EdgeArgs(
            network=network,
            fqdn=fqdn,
            hosted_zone_id=cfg.edge.hosted_zone_id,
            node_port=cfg.api.node_port,
            health_check_path=policy.path,
            waf_rate_limit=cfg.edge.waf_rate_limit,
            access_log_retention_days=cfg.edge.access_log_retention_days,
            production=cfg.production,
            # /metrics through the ALB: from the on-prem site (its monitoring, over the VPN) only
            monitoring_cidrs=cfg.network.onprem_cidrs,
        ),
        tags,
    )
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            config=cfg.cluster,
            network=network,
            region=cfg.region,
            alb_security_group_id=edge.security_group.id,
            target_group_arn=edge.target_group.arn,
            node_port=cfg.api.node_port,
        ),
        tags,
    )
    backup = None
    if cfg.database.mode == "patroni":
        # pgBackRest's repository; RDS takes its own backups
        backup = BackupRepository(
            "backup", BackupRepositoryArgs(cfg.backup, cfg.region, cfg.production), tags
        )
    database = Database(
        "database",
        DatabaseArgs(
            config=cfg.database,
            network=network,
            client_security_group_id=cluster.cluster_security_group_id,
            password=cfg.database_password,
            production=cfg.production,
            instance_profile=backup.instance_profile.name if backup else None,
            s3_prefix_list_id=network.s3_endpoint.prefix_list_id if backup else None,
        ),
        tags,
    )
    db_host: pulumi.Output[str] = database.address
    read_url: pulumi.Input[str] = ""  # RDS: reads take the writes' URL (empty = PUENTE_DATABASE_URL)
    leader: LeaderEndpoint | None = None
    if cfg.database.patroni is not None and cfg.database.mode == "patroni":
        # The twin of the lab's HAProxy: :5432 follows the leader on either site, :5433 the leader or the
        # synchronous standby, so the API never names a fixed member.
        leader = LeaderEndpoint(
            "leader",
            LeaderEndpointArgs(
                network=network,
                client_security_group_id=cluster.cluster_security_group_id,
                cloud_members=database.member_addresses,
                onprem_members=cfg.database.patroni.onprem_members,
            ),
            tags,
        )
        db_host = leader.dns_name
        read_url = leader.dns_name.apply(lambda host: _database_url(cfg, host, READ_PORT))
    cluster.pod_role("api-pods", NAMESPACE, SERVICE_ACCOUNT, queue.consumer_policy())
    db_url = db_host.apply(lambda host: _database_url(cfg, host, database.port))
    _api(cfg, policy, cluster, queue, db_url, read_url, tags)
    dns = FailoverDns(
        "failover",
        FailoverDnsArgs(
            policy=policy,
            zone_id=cfg.edge.hosted_zone_id,
            fqdn=fqdn,
            onprem_gateway_address=cfg.dns.onprem_gateway_address,
            alb_dns_name=edge.dns_name,
            alb_zone_id=edge.zone_id,
            checker_regions=cfg.dns.health_check_regions,
        ),
        tags,
    )
    alarms = Alarms(
        "alarms",
        AlarmsArgs(
            config=cfg.alarms,
            region=cfg.region,
            dead_letter_queue=queue.dead_letter,
            load_balancer=edge.load_balancer,
            target_group=edge.target_group,
            health_check_ids=dns.health_check_ids,
            database=database,
            allocated_storage_gb=cfg.database.allocated_storage_gb,
            leader=leader,
            vpn=network.vpn,
        ),
        tags,
    )

    exported = _exports(cfg, network, edge, cluster, queue, database, db_host, dns, alarms, fqdn)
    if backup is not None:
        exported |= {
            out.BACKUP_BUCKET: backup.bucket.bucket,
            out.BACKUP_REGION: cfg.region,
            out.BACKUP_ENDPOINT: backup.endpoint,
            out.BACKUP_PATH: backup.path,
            out.BACKUP_KEY_ID: backup.onprem_access_key_id,
            out.BACKUP_SECRET_ACCESS_KEY: backup.onprem_secret_access_key,
            out.BACKUP_KMS_KEY_ARN: backup.key.arn,
        }
    return exported


def _exports(
    cfg: StackConfig,
    network: Network,
    edge: Edge,
    cluster: Cluster,
    queue: Queue,
    database: Database,
    db_host: pulumi.Output[str],
    dns: FailoverDns,
    alarms: Alarms,
    fqdn: str,
) -> dict[str, Any]:
    return {
        out.REGION: cfg.region,
        out.VPC_ID: network.vpc.id,
        out.VPC_CIDR: network.cidr,
        out.VPN_CONNECTION_ID: network.vpn.id,
        out.VPN_TUNNEL_ADDRESSES: network.vpn_tunnel_addresses,
        out.VPN_TUNNELS: network.vpn_tunnels,
        out.VPN_PRESHARED_KEYS: network.vpn_preshared_keys,
        out.ONPREM_CIDRS: list(cfg.network.onprem_cidrs),
        out.ALB_DNS_NAME: edge.dns_name,
        out.API_URL: f"https://{fqdn}",
        out.API_GATEWAY_URL: edge.api_gateway_url,
        out.FAILOVER_FQDN: fqdn,
        out.HEALTH_CHECK_IDS: dns.health_check_ids,
        out.CLUSTER_NAME: cluster.cluster.name,
        out.ECR_REPOSITORY_URL: cluster.repository.repository_url,
        out.KUBECONFIG: cluster.kubeconfig,
        out.DB_MODE: cfg.database.mode,
        # What the cloud API connects to: the RDS instance, or the leader endpoint in Patroni mode.
        out.DB_ADDRESS: db_host,
        out.DB_PORT: database.port,
        out.DB_NAME: cfg.database.name,
        out.DB_ENDPOINT: db_host.apply(lambda host: f"{host}:{database.port}"),
        out.QUEUE_URL: queue.queue.url,
        out.QUEUE_NAME: queue.queue.name,
        out.DEAD_LETTER_QUEUE_URL: queue.dead_letter.url,
        out.CLOUD_NODES: database.nodes,
        out.ALARM_TOPIC_ARNS: {"stack": alarms.topic.arn, "healthChecks": alarms.health_check_topic.arn},
    }


def _api(
    cfg: StackConfig,
    policy: FailoverPolicy,
    cluster: Cluster,
    queue: Queue,
    db_url: pulumi.Input[str],
    read_url: pulumi.Input[str],
    tags: Tags,
) -> None:
    """The API on EKS, once its image is in the repository (puente:api.imageDigest)."""
    if not cfg.api.image_digest:
        # First deployment: the repository exists only after this `pulumi up`; an API Deployment naming
        # an image nobody could push yet would only wait on ImagePullBackOff.
        pulumi.log.warn(
            "puente:api.imageDigest is not set: the API is not deployed. Push the image to the "
            "ecrRepositoryUrl output, set the digest (docs/CLOUD.md, The API image), run `pulumi up` again."
        )
        return
    ApiService(
        "api",
        ApiServiceArgs(
            config=cfg.api,
            provider=cluster.provider,
            # By digest: what runs is exactly the image pushed (docs/CLOUD.md, The API image).
            image=cluster.repository.repository_url.apply(lambda url: f"{url}@{cfg.api.image_digest}"),
            runtime_vars={
                "api_site": "cloud",
                "api_site_role": "secondary",  # templates/failover/policy.yml: the cloud edge is SECONDARY
                "api_database_url": db_url,
                "api_database_read_url": read_url,
                "api_broker_url": queue.queue.name.apply(lambda name: f"sqs://{name}?region={cfg.region}"),
                "api_idempotency_ttl_seconds": cfg.api.idempotency_ttl_seconds,
                "api_max_body_bytes": cfg.api.max_body_bytes,
                "api_log_level": cfg.api.log_level,
                "api_rate_limit_per_second": cfg.api.rate_limit_per_second,
                "api_rate_limit_burst": cfg.api.rate_limit_burst,
                # the ALB (in front of the pods, target type ip) connects from the VPC's addresses
                "api_forwarded_allow_ips": cfg.network.vpc_cidr,
            },
            # SQS is reached with the pods' IAM role (EKS Pod Identity): no broker password in the cloud.
            secret_vars={"api_database_password": cfg.database_password, "api_broker_password": ""},
            # mounted at DATABASE_CA_FILE, the URLs' sslrootcert=
            database_ca=cfg.database.ca_certificate,
            health_path="/healthz",
            ready_path=policy.path,
        ),
        tags,
    )


def _database_url(cfg: StackConfig, host: str, port: int) -> str:
    """As on-prem (roles/api defaults, api_database_url): TLS with sslmode=verify-full, so libpq checks the
    certificate's chain against the stack's CA (database.caCertificate, mounted at DATABASE_CA_FILE) and
    that it names `host` — the leader endpoint's DNS name (Patroni: the members' certificates name it,
    puente_cloud_db_address) or the RDS instance's address (Amazon's certificates name it)."""
    return (
        f"postgresql://{cfg.database.username}@{host}:{port}/{cfg.database.name}"
        f"?sslmode=verify-full&sslrootcert={DATABASE_CA_FILE}"
    )


def export_all(values: dict[str, Any]) -> None:
    for key, value in values.items():
        pulumi.export(key, value)
