"""The leader endpoint: an internal NLB that follows the Patroni leader on either site (Patroni mode)."""

from __future__ import annotations

from typing import Any

import pytest
from puente_cloud import outputs
from puente_cloud.config import ConfigError
from stacks_helpers import DELETE, run_stack, runtime_data

from puente.pulumikit import RecordedResource, Recording

NLB = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
ONPREM_MEMBERS = ["10.89.1.31", "10.89.1.32"]  # Pulumi.prod.yaml: database.patroni.onpremMembers


def _named(rec: Recording, type_: str, name: str) -> RecordedResource:
    (found,) = [r for r in rec.of_type(type_) if r.name == name]
    return found


def test_an_internal_nlb_with_a_write_and_a_read_listener(prod: Recording) -> None:
    nlb = _named(prod, NLB, "leader-nlb")
    assert nlb.inputs["loadBalancerType"] == "network" and nlb.inputs["internal"] is True
    assert nlb.inputs["enableCrossZoneLoadBalancing"] is True  # on-prem targets sit in zone "all"
    private = {s.urn for s in prod.of_type("aws:ec2/subnet:Subnet") if "private" in s.name}
    assert set(nlb.property_dependencies["subnets"]) == private
    groups = {g.name: g for g in prod.of_type(TARGET_GROUP) if g.name.startswith("leader-")}
    listeners = {
        li.inputs["port"]: li
        for li in prod.of_type("aws:lb/listener:Listener")
        if li.name.startswith("leader-")
    }
    assert set(listeners) == {5432.0, 5433.0}
    for port, group in ((5432.0, "leader-write"), (5433.0, "leader-read")):
        assert listeners[port].inputs["protocol"] == "TCP"
        assert list(listeners[port].property_dependencies["defaultActions"]) == [groups[group].urn]
        assert nlb.urn in listeners[port].property_dependencies["loadBalancerArn"]


@pytest.mark.parametrize(
    ("group", "path"), [("leader-write", "/primary"), ("leader-read", "/read-only-sync")]
)
def test_targets_are_checked_on_patronis_rest_api(prod: Recording, group: str, path: str) -> None:
    inputs = _named(prod, TARGET_GROUP, group).inputs
    assert (inputs["port"], inputs["protocol"], inputs["targetType"]) == (5432.0, "TCP", "ip")
    check = inputs["healthCheck"]
    assert (check["protocol"], check["port"], check["path"], check["matcher"]) == (
        "HTTPS",
        "8008",
        path,
        "200",
    )
    assert (check["interval"], check["unhealthyThreshold"], check["healthyThreshold"]) == (5.0, 2.0, 2.0)
    assert check["timeout"] < check["interval"]
    # an old leader's sessions are reset when it fails the check (HAProxy: on-marked-down shutdown-sessions)
    assert inputs["targetHealthStates"] == [{"enableUnhealthyConnectionTermination": True}]
    assert (inputs["deregistrationDelay"], inputs["connectionTermination"]) == (10.0, True)


def _targets(rec: Recording, group: str) -> dict[str, Any]:
    urn = _named(rec, TARGET_GROUP, group).urn
    return {
        a.inputs["targetId"]: a.inputs.get("availabilityZone")
        for a in rec.of_type(ATTACHMENT)
        if a.parent == urn
    }


@pytest.mark.parametrize("group", ["leader-write", "leader-read"])
def test_every_member_of_both_sites_is_a_target(prod: Recording, group: str) -> None:
    cloud = {n["address"] for n in prod.outputs[outputs.CLOUD_NODES].values()}
    assert len(cloud) == 2
    targets = _targets(prod, group)
    assert targets == {**dict.fromkeys(cloud), **dict.fromkeys(ONPREM_MEMBERS, "all")}
    assert all(a.inputs["port"] == 5432.0 for a in prod.of_type(ATTACHMENT))


def test_security_groups_open_the_members_to_the_nlb_only_from_inside(prod: Recording) -> None:
    vpc = prod.outputs[outputs.VPC_CIDR]
    sg = _named(prod, "aws:ec2/securityGroup:SecurityGroup", "leader-nlb")
    assert sg.urn in _named(prod, NLB, "leader-nlb").property_dependencies["securityGroups"]
    ingress = [
        r
        for r in prod.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("leader-")
    ]
    cluster_sg = prod.one("aws:eks/cluster:Cluster").urn
    assert sorted(r.inputs["fromPort"] for r in ingress) == [5432.0, 5433.0]
    assert all(
        "cidrIpv4" not in r.inputs and cluster_sg in r.property_dependencies["referencedSecurityGroupId"]
        for r in ingress
    )
    egress = {
        (r.inputs["fromPort"], r.inputs["cidrIpv4"])
        for r in prod.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.name.startswith("leader-")
    }
    assert egress == {(p, c) for p in (5432.0, 8008.0) for c in (vpc, "10.89.0.0/16")}
    # the members accept PostgreSQL and the Patroni checks from the NLB's subnets (the VPC CIDR)
    members = {
        (r.inputs["fromPort"], r.inputs.get("cidrIpv4"))
        for r in prod.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("database-")
    }
    assert {(5432.0, vpc), (8008.0, vpc)} <= members


def test_the_api_and_the_outputs_name_the_endpoint_not_a_member(prod: Recording) -> None:
    host = prod.outputs[outputs.DB_ADDRESS]
    assert host.startswith("leader-nlb-") and host.endswith(".elb.amazonaws.com")
    assert prod.outputs[outputs.DB_ENDPOINT] == f"{host}:5432"
    data = runtime_data(prod)
    tls = "sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt"
    assert data["PUENTE_DATABASE_URL"] == f"postgresql://puente@{host}:5432/puente?{tls}"
    assert data["PUENTE_DATABASE_READ_URL"] == f"postgresql://puente@{host}:5433/puente?{tls}"
    members = {n["address"] for n in prod.outputs[outputs.CLOUD_NODES].values()}
    assert not any(m in data["PUENTE_DATABASE_URL"] for m in members)


def test_rds_mode_has_no_leader_endpoint(cloud_only: Recording) -> None:
    assert [r.name for r in cloud_only.of_type(NLB)] == ["edge-alb"]
    data = runtime_data(cloud_only)
    assert data["PUENTE_DATABASE_READ_URL"] == ""
    # RDS: verified against the CA of the stack (Amazon's RDS bundle), for the instance's own address
    host = cloud_only.outputs[outputs.DB_ADDRESS]
    assert data["PUENTE_DATABASE_URL"] == (
        f"postgresql://puente@{host}:5432/puente?sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt"
    )


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], "puente:database.patroni.onpremMembers: list the on-prem Patroni members' addresses"),
        (DELETE, "puente:database.patroni.onpremMembers: list the on-prem Patroni members' addresses"),
        (["10.90.1.31"], "10.90.1.31 is outside network.onpremCidrs: the VPN does not route to it"),
        (["85.10.20.40"], "85.10.20.40 is not a private IPv4 address"),
        (["db1"], "'db1' is not an IPv4 address"),
        (["10.89.1.31", "10.89.1.31"], "lists an address twice"),
    ],
)
def test_onprem_members_are_validated(members: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        run_stack("prod", {"puente:database.patroni.onpremMembers": members})
    assert expected in str(info.value)
