"""What every Puente component shares: type tokens, child naming, `parent=self`, and tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

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
