"""What every Puente component shares: type tokens, child naming, `parent=self`, and tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

TOKEN_PREFIX = "puente"


class Tags:
    """The one tags helper: every taggable resource gets the stack's tags plus its own Name.

    Tags are passed explicitly (not only as provider default tags) so that they are visible in the
    resource's inputs, where the `required-tags` policy and reviewers of `pulumi preview` see them.
    """

    def __init__(self, base: Mapping[str, str]) -> None:
        self.base = dict(base)

    def __call__(self, name: str, **extra: str) -> dict[str, str]:
        return {**self.base, "Name": name, **extra}


class Component(pulumi.ComponentResource):
    """A ComponentResource with the `puente:<module>:<Name>` token and name-derived children."""

    MODULE: str = ""

    def __init__(self, name: str, tags: Tags, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TOKEN_PREFIX}:{self.MODULE}:{type(self).__name__}", name, None, opts)
        self.name = name
        self.tags = tags

    def child(self, suffix: str) -> str:
        """Child names derive from the component's name, so two instances never collide."""
        return f"{self.name}-{suffix}"

    def physical(self, suffix: str) -> str:
        """A name AWS sees, unique per account and region: project and stack come first.

        Only for names AWS requires us to choose (EKS cluster, KMS alias, snapshot, log group); all others
        are auto-named by Pulumi with a random suffix.
        """
        return f"{pulumi.get_project()}-{pulumi.get_stack()}-{self.child(suffix)}"

    def opts(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for a child: parent=self unless a grandchild names its own parent."""
        kwargs.setdefault("parent", self)
        return pulumi.ResourceOptions(**kwargs)

    def sg_rule(
        self,
        direction: Literal["in", "out"],
        name: str,
        security_group: aws.ec2.SecurityGroup,
        ports: tuple[int, int],
        description: str,
        *,
        cidr_ipv4: pulumi.Input[str] | None = None,
        referenced_security_group_id: pulumi.Input[str] | None = None,
    ) -> None:
        """One TCP rule of ``security_group`` (ports = from, to), a child of the group, tagged by its name;
        the peer is a CIDR or another security group."""
        rule = aws.vpc.SecurityGroupIngressRule if direction == "in" else aws.vpc.SecurityGroupEgressRule
        rule(
            name,
            security_group_id=security_group.id,
            ip_protocol="tcp",
            from_port=ports[0],
            to_port=ports[1],
            description=description,
            tags=self.tags(name),
            cidr_ipv4=cidr_ipv4,
            referenced_security_group_id=referenced_security_group_id,
            opts=self.opts(parent=security_group),
        )
