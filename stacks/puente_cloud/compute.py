"""Compute: the EKS cluster (EKS Auto Mode scales its nodes), a baseline managed node group behind the ALB,
the ECR repository, and a Kubernetes provider for it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .base import Component, Tags
from .config import ClusterConfig
from .network import Network
from .security import kms_key, service_role

_AWS_POLICY = "arn:aws:iam::aws:policy/"
# EKS Auto Mode: AWS runs the node autoscaler (Karpenter-based), block storage and load balancing
# controllers itself — no image of theirs is named here. The cluster role needs these on top of
# AmazonEKSClusterPolicy; the nodes Auto Mode launches use AUTO_NODE_POLICIES.
AUTO_MODE_CLUSTER_POLICIES = (
    "AmazonEKSClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)
AUTO_NODE_POLICIES = ("AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly")
AUTO_NODE_POOLS = ("general-purpose", "system")
# EKS-managed add-ons (AWS builds and patches their images): the Pod Identity agent, metrics-server (the
# HPA's metrics) and, because an Auto Mode cluster bootstraps no self-managed networking add-ons, the
# networking the baseline managed node group needs (Auto Mode's own nodes have it built in).
ADDONS = (
    ("pod-identity", "eks-pod-identity-agent"),
    ("metrics", "metrics-server"),
    ("vpc-cni", "vpc-cni"),
    ("kube-proxy", "kube-proxy"),
    ("coredns", "coredns"),
)


@dataclass(frozen=True)
class ClusterArgs:
    config: ClusterConfig
    network: Network
    region: str
    alb_security_group_id: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    node_port: int


class Cluster(Component):
    MODULE = "compute"

    def __init__(
        self, name: str, args: ClusterArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        cfg, net = args.config, args.network
        secrets_key = kms_key(self, "secrets", "Envelope encryption of the EKS cluster's Kubernetes Secrets")
        cluster_role = service_role(
            self, "cluster-role", "eks.amazonaws.com", [_AWS_POLICY + p for p in AUTO_MODE_CLUSTER_POLICIES]
        )
        auto_node_role = service_role(
            self, "auto-node-role", "ec2.amazonaws.com", [_AWS_POLICY + p for p in AUTO_NODE_POLICIES]
        )
        cluster_name = self.child("eks")
        # EKS writes control-plane logs to this group; created first to own its retention.
        log_group = aws.cloudwatch.LogGroup(
            cluster_name,
            name=f"/aws/eks/{self.physical('eks')}/cluster",
            retention_in_days=90,
            tags=tags(cluster_name),
            opts=self.opts(),
        )
        self.cluster = aws.eks.Cluster(
            cluster_name,
            name=self.physical("eks"),
            version=cfg.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": net.private_subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": bool(cfg.public_access_cidrs),
                "public_access_cidrs": list(cfg.public_access_cidrs) or None,
            },
            encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            # EKS Auto Mode scales the nodes: when the HPA adds API pods the baseline group cannot hold,
            # the built-in node pools launch nodes (and remove them when idle). All three capabilities
            # are enabled together, and no self-managed add-ons are bootstrapped (ADDONS replaces them).
            compute_config={
                "enabled": True,
                "node_pools": list(AUTO_NODE_POOLS),
                "node_role_arn": auto_node_role.arn,
            },
            storage_config={"block_storage": {"enabled": True}},
            kubernetes_network_config={"elastic_load_balancing": {"enabled": True}},
            bootstrap_self_managed_addons=False,
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags(cluster_name),
            opts=self.opts(depends_on=[log_group]),
        )
        self.cluster_security_group_id = self.cluster.vpc_config.cluster_security_group_id
        # Managed nodes carry the cluster security group: let the ALB reach the API's NodePort there.
        aws.vpc.SecurityGroupIngressRule(
            self.child("alb-to-nodes"),
            security_group_id=self.cluster_security_group_id,
            referenced_security_group_id=args.alb_security_group_id,
            ip_protocol="tcp",
            from_port=args.node_port,
            to_port=args.node_port,
            description="ALB to the API's NodePort",
            tags=tags(self.child("alb-to-nodes")),
            opts=self.opts(parent=self.cluster),
        )
        self._addon_resources = self._addons()
        self._nodes(cfg, net, args.target_group_arn)
        repo_name = self.child("api")
        images_key = kms_key(self, "images", "Encryption at rest of the API's container images")
        self.repository = aws.ecr.Repository(
            repo_name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": images_key.arn}],
            tags=tags(repo_name),
            opts=self.opts(),
        )
        aws.ecr.LifecyclePolicy(
            repo_name,
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "keep the last 50 images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": 50,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=self.opts(parent=self.repository),
        )
        config_text: pulumi.Output[str] = pulumi.Output.all(
            self.cluster.name,
            self.cluster.endpoint,
            self.cluster.certificate_authority.data,
        ).apply(lambda a: kubeconfig(a[0], a[1], a[2], args.region))
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(config_text)
        # Explicit provider: objects never land in whatever cluster the operator's kubeconfig points at.
        self.provider = k8s.Provider(
            self.child("k8s"), kubeconfig=self.kubeconfig, opts=self.opts(depends_on=[self.node_group])
        )
        self.register_outputs(
            {
                "clusterName": self.cluster.name,
                "clusterEndpoint": self.cluster.endpoint,
                "repositoryUrl": self.repository.repository_url,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _nodes(self, cfg: ClusterConfig, net: Network, target_group_arn: pulumi.Input[str]) -> None:
        node_role = service_role(
            self,
            "node-role",
            "ec2.amazonaws.com",
            [
                f"{_AWS_POLICY}AmazonEKSWorkerNodePolicy",
                f"{_AWS_POLICY}AmazonEKS_CNI_Policy",
                f"{_AWS_POLICY}AmazonEC2ContainerRegistryReadOnly",
            ],
        )
        lt_name = self.child("nodes")
        # Launch template only for what the node group API lacks: encrypted gp3 root volume, IMDSv2 only.
        template = aws.ec2.LaunchTemplate(
            lt_name,
            update_default_version=True,
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": 40,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            metadata_options={
                "http_tokens": "required",
                "http_put_response_hop_limit": 2,
                "http_endpoint": "enabled",
            },
            tag_specifications=[
                {"resource_type": "instance", "tags": self.tags(lt_name)},
                {"resource_type": "volume", "tags": self.tags(lt_name)},
            ],
            tags=self.tags(lt_name),
            opts=self.opts(),
        )
        self.node_group = aws.eks.NodeGroup(
            lt_name,
            cluster_name=self.cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=net.private_subnet_ids,
            instance_types=list(cfg.instance_types),
            ami_type="AL2023_x86_64_STANDARD",
            scaling_config={
                "min_size": cfg.node_min,
                "desired_size": cfg.node_desired,
                "max_size": cfg.node_max,
            },
            update_config={"max_unavailable": 1},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels={"puente.io/role": "api"},
            tags=self.tags(lt_name),
            # The baseline: nodeDesired nodes behind the ALB, kept at that size by `pulumi up` (nothing
            # else scales this group). Capacity beyond it comes from EKS Auto Mode's node pools; their
            # pods are reached through the baseline nodes' NodePort (kube-proxy).
            # Its nodes join with the networking add-ons in place (CoreDNS then schedules on any node).
            opts=self.opts(depends_on=[self._addon_resources[a] for a in ("vpc-cni", "kube-proxy")]),
        )
        asg_name = self.node_group.resources[0].autoscaling_groups[0].name
        aws.autoscaling.Attachment(
            lt_name,
            autoscaling_group_name=asg_name,
            lb_target_group_arn=target_group_arn,
            opts=self.opts(parent=self.node_group),
        )

    def _addons(self) -> dict[str, pulumi.Resource]:
        """EKS-managed add-ons (ADDONS: AWS builds and patches their images; the program names none)."""
        return {
            addon: aws.eks.Addon(
                self.child(suffix),
                cluster_name=self.cluster.name,
                addon_name=addon,
                tags=self.tags(self.child(suffix)),
                opts=self.opts(parent=self.cluster),
            )
            for suffix, addon in ADDONS
        }

    def pod_role(
        self, suffix: str, namespace: str, service_account: str, policy: pulumi.Input[str]
    ) -> aws.iam.Role:
        """An IAM role the pods of `service_account` assume through EKS Pod Identity."""
        role = service_role(self, suffix, "pods.eks.amazonaws.com", [])
        aws.iam.RolePolicy(self.child(suffix), role=role.id, policy=policy, opts=self.opts(parent=role))
        aws.eks.PodIdentityAssociation(
            self.child(suffix),
            cluster_name=self.cluster.name,
            namespace=namespace,
            service_account=service_account,
            role_arn=role.arn,
            tags=self.tags(self.child(suffix)),
            opts=self.opts(parent=role),
        )
        return role


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that gets tokens from `aws eks get-token` (no static credentials in state)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "clusters": [
                {"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", name, "--region", region],
                        }
                    },
                }
            ],
        }
    )
