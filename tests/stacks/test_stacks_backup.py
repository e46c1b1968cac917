"""pgBackRest's production repository (stacks/puente_cloud/backup.py), on the stacks' recorded graphs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from puente_cloud import outputs
from puente_cloud.config import ConfigError
from stacks_helpers import cli_outputs, run_stack

from puente.pulumikit import RecordedResource, Recording

BUCKET = "aws:s3/bucket:Bucket"
PATRONI_STACKS = ["dev", "prod", "geo"]


def _bucket_setting(rec: Recording, type_: str) -> RecordedResource:
    (bucket,) = [b for b in rec.of_type(BUCKET) if b.name == "backup-bucket"]
    (found,) = [r for r in rec.of_type(type_) if r.property_dependencies.get("bucket") == (bucket.urn,)]
    return found


def _statements(policy: str) -> list[dict[str, Any]]:
    return json.loads(policy)["Statement"]


@pytest.mark.parametrize(
    ("stack", "mode", "days"),
    [("dev", "GOVERNANCE", 14.0), ("prod", "COMPLIANCE", 14.0), ("geo", "COMPLIANCE", 14.0)],
)
def test_the_bucket_is_versioned_encrypted_locked_private_and_tls_only(
    stack: str, mode: str, days: float, request: pytest.FixtureRequest
) -> None:
    rec: Recording = request.getfixturevalue(stack)
    (bucket,) = [b for b in rec.of_type(BUCKET) if b.name == "backup-bucket"]
    assert bucket.inputs["objectLockEnabled"] is True and bucket.inputs["forceDestroy"] is False
    key = next(k for k in rec.of_type("aws:kms/key:Key") if k.name == "backup-key")
    # in prod Pulumi refuses to delete the bucket or the key without which the backups are unreadable
    assert bucket.protect is key.protect is (mode == "COMPLIANCE")
    assert bucket.inputs["tags"]["Purpose"] == "database-backups"
    assert bucket.inputs["bucketPrefix"] == f"puente-{rec.stack}-backup-pgbackrest-"
    versioning = _bucket_setting(rec, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    (sse,) = _bucket_setting(
        rec, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs["rules"]
    # its own key: nothing else in the stack is encrypted with it
    assert sse == {
        "applyServerSideEncryptionByDefault": {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyId": key.outputs["arn"],
        },
        "bucketKeyEnabled": True,
    }
    users = {
        (r.type.rsplit(":", 1)[1], r.name)
        for r in rec.resources
        if key.urn in json.dumps(r.property_dependencies)
    }
    assert users == {
        ("Alias", "backup-key"),
        ("BucketServerSideEncryptionConfiguration", "backup-bucket"),
        ("RolePolicy", "backup-members"),
        ("UserPolicy", "backup-onprem"),
    }
    lock = _bucket_setting(rec, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock.inputs["objectLockEnabled"] == "Enabled"
    assert lock.inputs["rule"] == {"defaultRetention": {"mode": mode, "days": days}}
    assert versioning.urn in lock.dependencies
    (rule,) = _bucket_setting(rec, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs[
        "rules"
    ]
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30.0}
    assert rule["expiration"] == {"expiredObjectDeleteMarker": True}  # never the current versions
    block = _bucket_setting(rec, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        block.inputs[k] is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    (statement,) = _statements(_bucket_setting(rec, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert statement["Effect"] == "Deny" and statement["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    assert statement["Resource"] == [bucket.outputs["arn"], f"{bucket.outputs['arn']}/*"]


@pytest.mark.parametrize("stack", PATRONI_STACKS)
def test_the_members_may_use_the_repository_path_and_nothing_else(
    stack: str, request: pytest.FixtureRequest
) -> None:
    rec: Recording = request.getfixturevalue(stack)
    arn = next(b for b in rec.of_type(BUCKET) if b.name == "backup-bucket").outputs["arn"]
    key = next(k for k in rec.of_type("aws:kms/key:Key") if k.name == "backup-key").outputs["arn"]
    role = next(r for r in rec.of_type("aws:iam/role:Role") if r.name == "backup-members")
    role_policy = next(p for p in rec.children(role) if p.type == "aws:iam/rolePolicy:RolePolicy").inputs[
        "policy"
    ]
    assert rec.one("aws:iam/userPolicy:UserPolicy").inputs["policy"] == role_policy  # the same rights
    granted = {
        (tuple(s["Action"]), tuple(s["Resource"]), json.dumps(s.get("Condition")))
        for s in _statements(role_policy)
    }
    assert granted == {
        (("s3:ListBucket",), (arn,), json.dumps({"StringLike": {"s3:prefix": ["", "pgbackrest/*"]}})),
        (
            ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"),
            (f"{arn}/pgbackrest/*",),
            "null",
        ),
        (("kms:Decrypt", "kms:GenerateDataKey"), (key,), "null"),
    }
    (trust,) = _statements(role.inputs["assumeRolePolicy"])
    assert trust["Principal"] == {"Service": ["ec2.amazonaws.com"]} and trust["Action"] == ["sts:AssumeRole"]
    profile = rec.one("aws:iam/instanceProfile:InstanceProfile")
    members = [i for i in rec.of_type("aws:ec2/instance:Instance") if i.name.startswith("database-")]
    assert members and all(m.inputs["iamInstanceProfile"] == profile.outputs["name"] for m in members)
    assert all(m.inputs["metadataOptions"]["httpTokens"] == "required" for m in members)  # pgBackRest >= 2.39
    # the members have no internet egress: S3 through the VPC's gateway endpoint, HTTPS only
    endpoint = next(
        e for e in rec.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["vpcEndpointType"] == "Gateway"
    )
    (egress,) = [
        r
        for r in rec.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if "prefixListId" in r.inputs
    ]
    assert egress.inputs["prefixListId"] == endpoint.outputs["prefixListId"]
    assert (egress.inputs["fromPort"], egress.inputs["toPort"], egress.name) == (
        443.0,
        443.0,
        "database-postgres-out-s3",
    )


@pytest.mark.parametrize("stack", PATRONI_STACKS)
def test_the_stack_exports_what_pgbackrest_needs_and_the_secret_as_a_secret(
    stack: str, request: pytest.FixtureRequest
) -> None:
    rec: Recording = request.getfixturevalue(stack)
    o = rec.outputs
    bucket = next(b for b in rec.of_type(BUCKET) if b.name == "backup-bucket")
    assert o[outputs.BACKUP_BUCKET] == bucket.outputs["bucket"]
    assert o[outputs.BACKUP_REGION] == o[outputs.REGION]
    assert o[outputs.BACKUP_ENDPOINT] == f"s3.{o[outputs.REGION]}.amazonaws.com"
    assert o[outputs.BACKUP_PATH] == "/pgbackrest"
    access_key = rec.one("aws:iam/accessKey:AccessKey")
    assert o[outputs.BACKUP_KEY_ID] == access_key.id and o[outputs.BACKUP_KEY_ID].startswith("AKIA")
    assert o[outputs.BACKUP_SECRET_ACCESS_KEY] == access_key.outputs["secret"]
    assert rec.secret_outputs >= {outputs.BACKUP_SECRET_ACCESS_KEY}
    assert cli_outputs(rec)[outputs.BACKUP_SECRET_ACCESS_KEY] == "[secret]"  # never printed in plain


def test_a_cloud_only_stack_has_no_repository(cloud_only: Recording) -> None:
    assert not [b for b in cloud_only.of_type(BUCKET) if b.name == "backup-bucket"]
    assert not set(outputs.BACKUP) & set(cloud_only.outputs)


@pytest.mark.parametrize(
    ("stack", "overrides", "expected"),
    [
        ("prod", {"puente:backup.lockDays": 3}, "puente:backup.lockDays: prod requires at least 7 days"),
        (
            "dev",
            {"puente:backup.noncurrentRetentionDays": 10},
            "puente:backup.noncurrentRetentionDays: must be >= lockDays (14)",
        ),
        (
            "dev",
            {"puente:backup.lockMode": "LEGAL_HOLD"},
            "puente:backup.lockMode: must be one of COMPLIANCE, GOVERNANCE",
        ),
        ("dev", {"puente:backup.path": "pgbackrest/"}, "puente:backup.path: 'pgbackrest/' does not match"),
        ("dev", {"puente:backup.bucket": "mine"}, "puente:backup.bucket: is not a known setting"),
    ],
)
def test_bad_backup_settings_are_refused(stack: str, overrides: dict[str, Any], expected: str) -> None:
    recording = Recording(project="puente", stack=stack)
    with pytest.raises(ConfigError) as info:
        run_stack(stack, overrides, recording=recording)
    assert recording.resources == []
    assert expected in str(info.value)
