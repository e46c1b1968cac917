"""Backup: the production pgBackRest repository (issue 13) — an S3 bucket nothing can empty.

Versioned, SSE-KMS with its own key, no public access, TLS only, and S3 Object Lock: every version
written stays undeletable for `backup.lockDays` (COMPLIANCE mode in prod: not even the account's root
can shorten it). Object Lock with a default retention makes S3 refuse uploads without Content-MD5:
pgBackRest 2.45 sends it on every upload (its src/storage/s3/storage.c; only 2.55.0 did not), and the lab's
repositories are locked the same way, so every lab backup proves it (docs/RESTORE.md, "The repository's
deletion protection"). pgBackRest keeps deciding what its retention is (`expire` deletes, which in a versioned
bucket only adds a delete marker); the lifecycle rule purges those old versions once
`backup.noncurrentRetentionDays` have passed. Who may write: the cloud Patroni members through an
instance profile, the on-prem members with an IAM user's access key (its secret a Pulumi secret the
operator copies into the Ansible vault) — both limited to the repository's prefix and the bucket's key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .config import BackupConfig
from .security import assume_role_policy, kms_key, private_bucket, tls_only

# The tag the policies recognise a backup bucket by (policy/puente_policies.py: BACKUP_TAG).
BACKUP_TAG = ("Purpose", "database-backups")


@dataclass(frozen=True)
class BackupRepositoryArgs:
    config: BackupConfig
    region: str
    production: bool


class BackupRepository(Component):
    MODULE = "backup"

    def __init__(
        self, name: str, args: BackupRepositoryArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        cfg = args.config
        self.path = cfg.path
        self.prefix = cfg.path.lstrip("/")  # S3 keys carry no leading slash
        # without it the backups cannot be read: in prod, Pulumi refuses to delete it, as the bucket
        self.key = kms_key(
            self, "key", "Encryption at rest of the pgBackRest repository", protect=args.production
        )
        bucket_name = self.child("bucket")
        self.bucket = aws.s3.Bucket(
            bucket_name,
            bucket_prefix=f"{self.physical('pgbackrest')}-",
            object_lock_enabled=True,
            force_destroy=False,
            tags=self.tags(bucket_name, **dict([BACKUP_TAG])),
            # as the database itself: Pulumi refuses to delete the production repository
            opts=self.opts(protect=args.production),
        )
        private_bucket(self, bucket_name, self.bucket)
        child = self.opts(parent=self.bucket)
        versioning = aws.s3.BucketVersioning(
            bucket_name, bucket=self.bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            bucket_name,
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    "bucket_key_enabled": True,  # one KMS call per object group, not per object
                }
            ],
            opts=child,
        )
        after_versioning = self.opts(parent=self.bucket, depends_on=[versioning])
        aws.s3.BucketObjectLockConfiguration(
            bucket_name,
            bucket=self.bucket.id,
            object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": cfg.lock_mode, "days": cfg.lock_days}},
            opts=after_versioning,
        )
        aws.s3.BucketLifecycleConfiguration(
            bucket_name,
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "purge-what-pgbackrest-expired",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    # never an expiration of current versions: pgBackRest still needs every file it lists
                    "noncurrent_version_expiration": {"noncurrent_days": cfg.noncurrent_retention_days},
                    "expiration": {"expired_object_delete_marker": True},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=after_versioning,
        )
        aws.s3.BucketPolicy(
            bucket_name,
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(_bucket_policy),
            opts=child,
        )
        self.access_policy = self._access_policy()
        self._cloud_members()
        self._onprem_members()
        self.endpoint = f"s3.{args.region}.amazonaws.com"
        self.register_outputs(
            {
                "bucket": self.bucket.bucket,
                "path": self.path,
                "endpoint": self.endpoint,
                "keyArn": self.key.arn,
                "instanceProfile": self.instance_profile.name,
                "onpremUser": self.onprem_user.name,
            }
        )

    def _access_policy(self) -> pulumi.Output[str]:
        """What pgBackRest needs on the repository, nothing else: list the bucket under its path, read
        (also older versions, for a restore), write and delete objects there, and use the bucket's key.
        Deleting a *version* is not granted (and Object Lock refuses it anyway)."""
        prefix = self.prefix
        statements: list[Any] = [
            {
                "sid": "ListTheRepositoryPath",
                "effect": "Allow",
                "actions": ["s3:ListBucket"],
                "resources": [self.bucket.arn],
                "conditions": [
                    {"test": "StringLike", "variable": "s3:prefix", "values": ["", f"{prefix}/*"]}
                ],
            },
            {
                "sid": "ReadWriteTheRepository",
                "effect": "Allow",
                "actions": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"],
                "resources": [self.bucket.arn.apply(lambda arn: f"{arn}/{prefix}/*")],
            },
            {
                "sid": "UseTheBucketKey",
                "effect": "Allow",
                "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
                "resources": [self.key.arn],
            },
        ]
        return aws.iam.get_policy_document_output(statements=statements).json

    def _cloud_members(self) -> None:
        """The cloud members' instance profile: pgBackRest finds its credentials itself
        (repo1-s3-key-type=auto, IMDSv2), so no key is stored on them."""
        name = self.child("members")
        role = aws.iam.Role(
            name,
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=self.tags(name),
            opts=self.opts(),
        )
        aws.iam.RolePolicy(name, role=role.id, policy=self.access_policy, opts=self.opts(parent=role))
        self.instance_profile = aws.iam.InstanceProfile(
            name, role=role.name, tags=self.tags(name), opts=self.opts(parent=role)
        )

    def _onprem_members(self) -> None:
        """The on-prem members sign with an access key of this user (no console, no other right). Its
        secret is a Pulumi secret; the operator copies it into the Ansible vault (docs/CLOUD.md)."""
        name = self.child("onprem")
        self.onprem_user = aws.iam.User(name, path="/puente/", tags=self.tags(name), opts=self.opts())
        aws.iam.UserPolicy(
            name,
            user=self.onprem_user.name,
            policy=self.access_policy,
            opts=self.opts(parent=self.onprem_user),
        )
        key = aws.iam.AccessKey(name, user=self.onprem_user.name, opts=self.opts(parent=self.onprem_user))
        self.onprem_access_key_id = key.id
        self.onprem_secret_access_key: pulumi.Output[str] = pulumi.Output.secret(key.secret)  # type: ignore[arg-type]


def _bucket_policy(bucket_arn: str) -> str:
    """TLS only. (Encryption needs no statement: the default encryption applies the bucket's key to
    every object pgBackRest writes, which sends no encryption header of its own.)"""
    return json.dumps({"Version": "2012-10-17", "Statement": [tls_only(bucket_arn)]})
