"""Node autoscaling: EKS Auto Mode (AWS runs the autoscaler; the program names no autoscaler image)."""

from __future__ import annotations

import json

from puente.pulumikit import Recording

_POLICY = "arn:aws:iam::aws:policy/"


def _role_policies(rec: Recording, role: str) -> set[str]:
    urn = next(r.urn for r in rec.of_type("aws:iam/role:Role") if r.name == role)
    return {
        a.inputs["policyArn"].removeprefix(_POLICY)
        for a in rec.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.parent == urn
    }


def test_eks_auto_mode_scales_the_nodes(prod: Recording) -> None:
    cluster = prod.one("aws:eks/cluster:Cluster")
    compute = cluster.inputs["computeConfig"]
    assert compute["enabled"] is True and compute["nodePools"] == ["general-purpose", "system"]
    auto_role = next(r for r in prod.of_type("aws:iam/role:Role") if r.name == "cluster-auto-node-role")
    assert auto_role.urn in cluster.property_dependencies["computeConfig"]
    # Auto Mode wants its three capabilities together and no self-managed add-ons bootstrapped
    assert cluster.inputs["storageConfig"] == {"blockStorage": {"enabled": True}}
    assert cluster.inputs["kubernetesNetworkConfig"] == {"elasticLoadBalancing": {"enabled": True}}
    assert cluster.inputs["bootstrapSelfManagedAddons"] is False
    assert _role_policies(prod, "cluster-cluster-role") == {
        "AmazonEKSClusterPolicy",
        "AmazonEKSComputePolicy",
        "AmazonEKSBlockStoragePolicy",
        "AmazonEKSLoadBalancingPolicy",
        "AmazonEKSNetworkingPolicy",
    }
    assert _role_policies(prod, "cluster-auto-node-role") == {
        "AmazonEKSWorkerNodeMinimalPolicy",
        "AmazonEC2ContainerRegistryPullOnly",
    }
    trust = [
        i
        for i in prod.invokes
        if i.token == "aws:iam/getPolicyDocument:getPolicyDocument"
        and i.args["statements"][0].get("principals", [{}])[0].get("identifiers") == ["eks.amazonaws.com"]
    ]
    assert trust and trust[0].args["statements"][0]["actions"] == ["sts:AssumeRole", "sts:TagSession"]


def test_the_baseline_node_group_is_what_config_says_and_no_autoscaler_image_is_named(
    prod: Recording,
) -> None:
    group = prod.one("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["scalingConfig"] == {"minSize": 3.0, "desiredSize": 3.0, "maxSize": 9.0}
    addons = {a.inputs["addonName"]: a.urn for a in prod.of_type("aws:eks/addon:Addon")}
    assert {addons["vpc-cni"], addons["kube-proxy"]} <= set(group.dependencies)
    images = json.dumps([r.inputs for r in prod.custom() if r.type.startswith("kubernetes:")])
    assert "cluster-autoscaler" not in images and "karpenter" not in images.lower()
