"""Shared building blocks for encryption and IAM, so components do not copy them."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from .base import Component


def kms_key(
    owner: Component,
    suffix: str,
    description: str,
    *,
    region: str | None = None,
    service_users: tuple[str, ...] = (),
    protect: bool = False,
) -> aws.kms.Key:
    """A customer-managed key with yearly rotation, owned by (and named after) `owner`, in the stack's
    region or in `region`. `service_users` are AWS service principals that must encrypt with it
    themselves (CloudWatch publishing to an encrypted SNS topic): the key policy then names them beside
    the account, whose IAM policies govern every other use (AWS's default key policy). `protect`: Pulumi
    refuses to delete it (a key whose loss makes data unreadable)."""
    name = owner.child(suffix)
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=_key_policy(service_users) if service_users else None,
        region=region,
        tags=owner.tags(name),
        opts=owner.opts(protect=protect),
    )
    aws.kms.Alias(
        name,
        name=f"alias/{owner.physical(suffix)}",
        target_key_id=key.key_id,
        region=region,
        opts=owner.opts(parent=key),
    )
    return key


def _key_policy(service_users: tuple[str, ...]) -> pulumi.Output[str]:
    account = aws.get_caller_identity_output().account_id
    # Plain dicts: the account id is an Output, which the typed *Args classes of invokes do not accept.
    statements: list[Any] = [
        {
            # AWS's default key policy: the account's IAM policies decide.
            "sid": "AccountIamPolicies",
            "effect": "Allow",
            "actions": ["kms:*"],
            "resources": ["*"],
            "principals": [
                {"type": "AWS", "identifiers": [account.apply(lambda a: f"arn:aws:iam::{a}:root")]}
            ],
        },
        {
            "sid": "ServicesEncrypt",
            "effect": "Allow",
            "actions": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "resources": ["*"],
            # (the topic's own policy decides who may publish; the service only encrypts for it)
            "principals": [{"type": "Service", "identifiers": list(service_users)}],
        },
    ]
    return aws.iam.get_policy_document_output(statements=statements).json


def tls_only(bucket_arn: str) -> dict[str, object]:
    """The bucket policy statement refusing every request that does not come over TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def private_bucket(owner: Component, name: str, bucket: aws.s3.Bucket) -> None:
    """No public access of any kind, and the bucket's owner owns every object (ACLs off)."""
    child = owner.opts(parent=bucket)
    aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketOwnershipControls(
        name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
    )


def assume_role_policy(service: str) -> pulumi.Output[str]:
    """Trust policy letting an AWS service (e.g. eks.amazonaws.com) assume a role."""
    # EKS Pod Identity and EKS Auto Mode (the cluster role) tag the sessions they start.
    tagged = ("pods.eks.amazonaws.com", "eks.amazonaws.com")
    actions = ["sts:AssumeRole", "sts:TagSession"] if service in tagged else ["sts:AssumeRole"]
    return aws.iam.get_policy_document_output(
        statements=[
            {
                "effect": "Allow",
                "actions": actions,
                "principals": [{"type": "Service", "identifiers": [service]}],
            }
        ]
    ).json


def service_role(owner: Component, suffix: str, service: str, managed_policies: list[str]) -> aws.iam.Role:
    """An IAM role for `service` with AWS-managed policies attached (one attachment per policy)."""
    name = owner.child(suffix)
    role = aws.iam.Role(
        name, assume_role_policy=assume_role_policy(service), tags=owner.tags(name), opts=owner.opts()
    )
    for arn in managed_policies:
        aws.iam.RolePolicyAttachment(
            f"{name}-{arn.rsplit('/', 1)[1]}", role=role.name, policy_arn=arn, opts=owner.opts(parent=role)
        )
    return role
