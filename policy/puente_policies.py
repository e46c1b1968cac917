"""The policies of the `puente-guardrails` pack. Each is a plain validate function, a kebab-case name,
a description and a remediation hint; tests/stacks/test_stacks_policies.py gives each its own failing case.

Properties arrive as the engine sends them: camelCase names, numbers as floats, lists and dicts as
read-only proxies (copy them with list()/dict() before combining).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pulumi_policy import (
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

REQUIRED_TAGS = ("Owner", "CostCenter", "Project", "Environment")
ANYWHERE = ("0.0.0.0/0", "::/0")
PRODUCTION = "prod"

# Types whose AWS resources take `tags` (kept in step with the program by a test that introspects
# pulumi_aws for every type the stacks declare).
TAGGABLE_TYPES = frozenset(
    {
        "aws:acm/certificate:Certificate",
        "aws:apigatewayv2/api:Api",
        "aws:apigatewayv2/stage:Stage",
        "aws:apigatewayv2/vpcLink:VpcLink",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:sns/topic:Topic",
        "aws:dlm/lifecyclePolicy:LifecyclePolicy",
        "aws:ec2/customerGateway:CustomerGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/instance:Instance",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:ec2/vpnConnection:VpnConnection",
        "aws:ec2/vpnGateway:VpnGateway",
        "aws:ecr/repository:Repository",
        "aws:eks/addon:Addon",
        "aws:eks/cluster:Cluster",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/role:Role",
        "aws:iam/user:User",
        "aws:kms/key:Key",
        "aws:lb/listener:Listener",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:rds/instance:Instance",
        "aws:rds/parameterGroup:ParameterGroup",
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:route53/healthCheck:HealthCheck",
        "aws:s3/bucket:Bucket",
        "aws:sqs/queue:Queue",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:wafv2/webAcl:WebAcl",
        "aws:wafv2/ipSet:IpSet",
        "aws:ebs/volume:Volume",
        "aws:rds/cluster:Cluster",
        "aws:dynamodb/table:Table",
    }
)


def _get(props: Mapping[str, Any], *path: str) -> Any:
    cur: Any = props
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _has(props: Mapping[str, Any], key: str) -> bool:
    """Whether `key` is set, without reading its value (which may be unknown during a preview: the
    pack's proxies raise on reading an unknown, and `key in props` reads it)."""
    return key in list(props)


def _items(value: Any) -> list[Any]:
    return list(value) if value is not None else []


def _is_prod(props: Mapping[str, Any]) -> bool:
    return _get(props, "tags", "Environment") == PRODUCTION


# --- encryption at rest -------------------------------------------------------------------------------
def _unencrypted(resource_type: str, props: Mapping[str, Any]) -> str | None:
    match resource_type:
        case "aws:rds/instance:Instance" | "aws:rds/cluster:Cluster":
            if props.get("storageEncrypted") is not True:
                return "storageEncrypted must be true"
        case "aws:sqs/queue:Queue":
            # Presence, not value: during a preview the key's ARN is still unknown.
            if not _has(props, "kmsMasterKeyId") and props.get("sqsManagedSseEnabled") is not True:
                return "set kmsMasterKeyId (or sqsManagedSseEnabled)"
        case "aws:eks/cluster:Cluster":
            resources = _items(_get(props, "encryptionConfig", "resources"))
            if "secrets" not in resources:
                return "encryptionConfig must cover Kubernetes secrets with a KMS key"
        case "aws:ecr/repository:Repository":
            kinds = [c.get("encryptionType") for c in _items(props.get("encryptionConfigurations"))]
            if "KMS" not in kinds:
                return "encryptionConfigurations must use KMS"
        case "aws:ec2/instance:Instance":
            devices = [props.get("rootBlockDevice") or {}, *_items(props.get("ebsBlockDevices"))]
            if any(d.get("encrypted") is not True for d in devices):
                return "root and EBS block devices must be encrypted"
        case "aws:ec2/launchTemplate:LaunchTemplate":
            for mapping in _items(props.get("blockDeviceMappings")):
                if _get(mapping, "ebs", "encrypted") not in ("true", True):
                    return f"block device {mapping.get('deviceName')} must be encrypted"
        case "aws:ebs/volume:Volume":
            if props.get("encrypted") is not True:
                return "encrypted must be true"
        case "aws:sns/topic:Topic":
            if not _has(props, "kmsMasterKeyId"):
                return "set kmsMasterKeyId (a key CloudWatch may use, for alarm topics)"
        case "aws:dynamodb/table:Table":
            if _get(props, "serverSideEncryption", "enabled") is not True:
                return "serverSideEncryption must be enabled"
    return None


def encryption_at_rest(args: ResourceValidationArgs, report: ReportViolation) -> None:
    problem = _unencrypted(args.resource_type, args.props)
    if problem:
        report(f"{args.resource_type} {args.name}: {problem}", None)


def s3_buckets_encrypted(args: StackValidationArgs, report: ReportViolation) -> None:
    encrypted: set[str] = set()
    for r in args.resources:
        if (
            r.resource_type
            == "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        ):
            rules = _items(r.props.get("rules"))
            if any(_get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") for rule in rules):
                encrypted.update(dep.urn for dep in r.property_dependencies.get("bucket", []))
    for r in args.resources:
        if r.resource_type == "aws:s3/bucket:Bucket" and r.urn not in encrypted:
            report(f"bucket {r.name} has no server-side encryption configuration", r.urn)


BUCKET = "aws:s3/bucket:Bucket"
# How the program marks the pgBackRest repository's bucket (stacks/puente_cloud/backup.py: BACKUP_TAG).
BACKUP_TAG = ("Purpose", "database-backups")


def _bucket_settings(resources: Iterable[PolicyResource], type_: str) -> dict[str, list[PolicyResource]]:
    """Bucket URN -> the resources of `type_` (BucketVersioning, ...) configuring it."""
    found: dict[str, list[PolicyResource]] = {}
    for r in resources:
        if r.resource_type == type_:
            for dep in r.property_dependencies.get("bucket", []):
                found.setdefault(dep.urn, []).append(r)
    return found


def _backup_buckets(resources: Iterable[PolicyResource]) -> list[PolicyResource]:
    key, value = BACKUP_TAG
    return [r for r in resources if r.resource_type == BUCKET and _get(r.props, "tags", key) == value]


def s3_no_public_access(args: StackValidationArgs, report: ReportViolation) -> None:
    blocks = _bucket_settings(args.resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in [r for r in args.resources if r.resource_type == BUCKET]:
        found = blocks.get(bucket.urn, [])
        if not any(all(b.props.get(f) is True for f in flags) for b in found):
            off = sorted({f for b in found for f in flags if b.props.get(f) is not True}) or list(flags)
            report(
                f"bucket {bucket.name} may become public: its public access block lacks {', '.join(off)}",
                bucket.urn,
            )


def backup_bucket_versioned(args: StackValidationArgs, report: ReportViolation) -> None:
    versioning = _bucket_settings(args.resources, "aws:s3/bucketVersioning:BucketVersioning")
    for bucket in _backup_buckets(args.resources):
        if not any(
            _get(v.props, "versioningConfiguration", "status") == "Enabled"
            for v in versioning.get(bucket.urn, [])
        ):
            report(
                f"backup bucket {bucket.name} is not versioned: an overwritten or deleted backup is gone",
                bucket.urn,
            )


def backup_bucket_encrypted_with_kms(args: StackValidationArgs, report: ReportViolation) -> None:
    configs = _bucket_settings(
        args.resources,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    for bucket in _backup_buckets(args.resources):
        rules = [rule for c in configs.get(bucket.urn, []) for rule in _items(c.props.get("rules"))]
        if not any(
            _get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm") in ("aws:kms", "aws:kms:dsse")
            and _has(_get(rule, "applyServerSideEncryptionByDefault") or {}, "kmsMasterKeyId")
            for rule in rules
        ):
            report(
                f"backup bucket {bucket.name} is not encrypted with a KMS key of its own (aws:kms and "
                "kmsMasterKeyId): who may read the backups must be a key policy/IAM decision",
                bucket.urn,
            )


def backup_bucket_deletion_protected(args: StackValidationArgs, report: ReportViolation) -> None:
    locks = _bucket_settings(
        args.resources, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
    )
    for bucket in _backup_buckets(args.resources):
        problems = []
        if bucket.props.get("objectLockEnabled") is not True:
            problems.append("objectLockEnabled is not true")
        if bucket.props.get("forceDestroy") is True:
            problems.append("forceDestroy lets `pulumi destroy` empty it")
        retention = [
            _get(lock.props, "rule", "defaultRetention") or {}
            for lock in locks.get(bucket.urn, [])
            if lock.props.get("objectLockEnabled") == "Enabled"
        ]
        if not any(
            r.get("mode") in ("COMPLIANCE", "GOVERNANCE") and float(r.get("days") or r.get("years") or 0) >= 1
            for r in retention
        ):
            problems.append("no object lock default retention (days or years) keeps what is written")
        if problems:
            report(f"backup bucket {bucket.name} can be emptied: {'; '.join(problems)}", bucket.urn)


# --- exposure ------------------------------------------------------------------------------------------
def no_public_database(args: ResourceValidationArgs, report: ReportViolation) -> None:
    rds = ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster")
    if args.resource_type in rds and args.props.get("publiclyAccessible") is True:
        report(f"database {args.name} is publicly accessible", None)


def _public_listener_ports(resources: Iterable[PolicyResource]) -> dict[str, set[int]]:
    """Security group URN -> ports that may be open to the internet (public ALB listeners)."""
    listeners: dict[str, set[int]] = {}
    for r in resources:
        if r.resource_type == "aws:lb/listener:Listener":
            ports = {443} if r.props.get("protocol") == "HTTPS" else set()
            actions = _items(r.props.get("defaultActions"))
            if (
                r.props.get("protocol") == "HTTP"
                and actions
                and all(
                    a.get("type") == "redirect" and _get(a, "redirect", "protocol") == "HTTPS"
                    for a in actions
                )
            ):
                ports = {80}
            port = int(r.props.get("port") or 0)
            for lb in r.property_dependencies.get("loadBalancerArn", []):
                if port in ports:
                    listeners.setdefault(lb.urn, set()).add(port)
    allowed: dict[str, set[int]] = {}
    for r in resources:
        if r.resource_type == "aws:lb/loadBalancer:LoadBalancer" and r.props.get("internal") is not True:
            for sg in r.property_dependencies.get("securityGroups", []):
                allowed.setdefault(sg.urn, set()).update(listeners.get(r.urn, set()))
    return allowed


def open_ingress_only_on_public_listener(args: StackValidationArgs, report: ReportViolation) -> None:
    allowed = _public_listener_ports(args.resources)
    for r in args.resources:
        rules: list[tuple[str, Any, Any, list[str], list[str]]] = []  # (direction, from, to, cidrs, sg urns)
        if r.resource_type in (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        ):
            cidrs = [c for c in (r.props.get("cidrIpv4"), r.props.get("cidrIpv6")) if c]
            sgs = [d.urn for d in r.property_dependencies.get("securityGroupId", [])]
            direction = "ingress" if "Ingress" in r.resource_type else "egress"
            rules.append((direction, r.props.get("fromPort"), r.props.get("toPort"), cidrs, sgs))
        elif r.resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule":
            cidrs = _items(r.props.get("cidrBlocks")) + _items(r.props.get("ipv6CidrBlocks"))
            sgs = [d.urn for d in r.property_dependencies.get("securityGroupId", [])]
            rules.append(
                (str(r.props.get("type")), r.props.get("fromPort"), r.props.get("toPort"), cidrs, sgs)
            )
        elif r.resource_type == "aws:ec2/securityGroup:SecurityGroup":
            for direction in ("ingress", "egress"):
                for rule in _items(r.props.get(direction)):
                    cidrs = _items(rule.get("cidrBlocks")) + _items(rule.get("ipv6CidrBlocks"))
                    rules.append((direction, rule.get("fromPort"), rule.get("toPort"), cidrs, [r.urn]))
        for direction, lo, hi, cidrs, sgs in rules:
            if not any(c in ANYWHERE for c in cidrs):
                continue
            ok = (
                direction == "ingress"
                and lo is not None
                and lo == hi
                and any(int(lo) in allowed.get(sg, set()) for sg in sgs)
            )
            if not ok:
                report(
                    f"{r.resource_type} {r.name}: {direction} {lo}-{hi} open to {cidrs}; only a public "
                    "load balancer's HTTPS listener (and its HTTP->HTTPS redirect) may be",
                    r.urn,
                )


# --- tags -----------------------------------------------------------------------------------------------
def required_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in TAGGABLE_TYPES:
        return
    tags = args.props.get("tags") or {}
    missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
    if missing:
        report(f"{args.resource_type} {args.name} lacks tags {', '.join(missing)}", None)


# --- resilience in production -----------------------------------------------------------------------------
def prod_database_resilience(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:rds/instance:Instance" or not _is_prod(args.props):
        return
    if args.props.get("multiAz") is not True:
        report(f"prod database {args.name} must be Multi-AZ", None)
    if float(args.props.get("backupRetentionPeriod") or 0) < 7:
        report(f"prod database {args.name} needs backupRetentionPeriod >= 7 days", None)
    if args.props.get("deletionProtection") is not True:
        report(f"prod database {args.name} needs deletionProtection", None)


# --- queues ---------------------------------------------------------------------------------------------
def sqs_dead_letter_queue(args: StackValidationArgs, report: ReportViolation) -> None:
    queues = [r for r in args.resources if r.resource_type == "aws:sqs/queue:Queue"]
    dead_letter_targets = {q.urn for q in _dead_letter_queues(queues)}
    for q in queues:
        if q.urn in dead_letter_targets:
            continue  # it is a DLQ
        if not _has(q.props, "redrivePolicy"):  # presence: the DLQ's ARN is unknown during a preview
            report(f"queue {q.name} has no dead-letter queue (redrivePolicy with maxReceiveCount)", q.urn)


def _dead_letter_queues(resources: Iterable[PolicyResource]) -> list[PolicyResource]:
    queues = [r for r in resources if r.resource_type == "aws:sqs/queue:Queue"]
    targets = {d.urn for q in queues for d in q.property_dependencies.get("redrivePolicy", [])}
    return [q for q in queues if q.urn in targets]


# --- alarms ----------------------------------------------------------------------------------------------
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
# What says at once that a dead-letter queue holds messages (its oldest message's age says it late).
DLQ_DEPTH = "ApproximateNumberOfMessagesVisible"


def dead_letter_queue_alarmed(args: StackValidationArgs, report: ReportViolation) -> None:
    """A dead-lettered message is an event the workers gave up on; nobody looks at a queue unprompted."""
    watched = set()
    for alarm in args.resources:
        if alarm.resource_type != METRIC_ALARM:
            continue
        if alarm.props.get("namespace") == "AWS/SQS" and alarm.props.get("metricName") == DLQ_DEPTH:
            watched |= _urns(alarm, "dimensions")
    for dlq in _dead_letter_queues(args.resources):
        if dlq.urn not in watched:
            report(
                f"dead-letter queue {dlq.name} has no CloudWatch alarm on its depth "
                "(AWS/SQS ApproximateNumberOfMessagesVisible, dimension QueueName = its name)",
                dlq.urn,
            )


def _listed(props: Mapping[str, Any], key: str) -> bool:
    """Whether the list `key` is set and not empty (its items may still be unknown in a preview)."""
    if not _has(props, key):
        return False
    try:
        return len(_items(props.get(key))) > 0
    except UnknownValueError:
        return True


def alarms_notify(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (METRIC_ALARM, "aws:cloudwatch/compositeAlarm:CompositeAlarm"):
        return
    missing = [key for key in ("alarmActions", "okActions") if not _listed(args.props, key)]
    if args.props.get("actionsEnabled") is False:
        missing.append("actionsEnabled (false)")
    if missing:
        report(
            f"alarm {args.name} notifies nobody: set {', '.join(missing)} (the alarm topic, for firing "
            "and clearing)",
            None,
        )


# --- Kubernetes -----------------------------------------------------------------------------------------
def _containers(props: Mapping[str, Any]) -> list[Any]:
    return _items(_get(props, "spec", "template", "spec", "containers"))


def probes_present(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:apps/v1:Deployment":
        return
    for c in _containers(args.props):
        if not c.get("ports"):
            continue  # no port, nothing to probe over HTTP/TCP (background processes)
        for probe in ("readinessProbe", "livenessProbe"):
            if not c.get(probe):
                report(
                    f"Deployment {args.name}: container {c.get('name')} serves a port without a {probe}", None
                )


def pods_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:apps/v1:Deployment":
        return
    pod = _get(args.props, "spec", "template", "spec") or {}
    init = _items(pod.get("initContainers"))
    for c in [*_containers(args.props), *init]:
        sc = c.get("securityContext") or {}
        missing = [
            k
            for k, want in (
                ("runAsNonRoot", True),
                ("readOnlyRootFilesystem", True),
                ("allowPrivilegeEscalation", False),
            )
            if sc.get(k) is not want
        ]
        if missing:
            report(f"Deployment {args.name}: container {c.get('name')} needs {', '.join(missing)}", None)
        if not _get(c, "resources", "requests") or not _get(c, "resources", "limits"):
            report(
                f"Deployment {args.name}: container {c.get('name')} needs resource requests and limits", None
            )


def _labels_match(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def hpa_and_pdb_present(args: StackValidationArgs, report: ReportViolation) -> None:
    def meta(r: PolicyResource) -> tuple[Any, Any]:
        return _get(r.props, "metadata", "namespace"), _get(r.props, "metadata", "name")

    hpas = [
        r
        for r in args.resources
        if r.resource_type.startswith("kubernetes:autoscaling/")
        and r.resource_type.endswith(":HorizontalPodAutoscaler")
    ]
    pdbs = [r for r in args.resources if r.resource_type == "kubernetes:policy/v1:PodDisruptionBudget"]
    for d in args.resources:
        if d.resource_type != "kubernetes:apps/v1:Deployment":
            continue
        if not any(c.get("ports") for c in _containers(d.props)):
            continue  # not serving: single background process, no HPA/PDB expected
        ns, name = meta(d)
        if not any(
            meta(h)[0] == ns
            and _get(h.props, "spec", "scaleTargetRef", "kind") == "Deployment"
            and _get(h.props, "spec", "scaleTargetRef", "name") == name
            for h in hpas
        ):
            report(f"Deployment {ns}/{name} has no HorizontalPodAutoscaler", d.urn)
        labels = _get(d.props, "spec", "template", "metadata", "labels") or {}
        if not any(
            meta(p)[0] == ns and _labels_match(_get(p.props, "spec", "selector") or {}, labels) for p in pdbs
        ):
            report(f"Deployment {ns}/{name} has no PodDisruptionBudget selecting its pods", d.urn)


# --- the API's database connections ---------------------------------------------------------------------
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DATABASE_URL_KEYS = ("PUENTE_DATABASE_URL", "PUENTE_DATABASE_READ_URL")
# Where the API finds the database's CA on both sites (roles/api: api_database_ca_file; stacks/: mounted).
DATABASE_CA_FILE = "/etc/puente/database-ca.crt"
_UNKNOWN = object()


def _config_map_data(maps: Mapping[tuple[Any, Any], PolicyResource], ns: Any, name: Any) -> Any:
    """The data of ConfigMap ns/name in the stack: a dict, None when the stack has no such ConfigMap, or
    _UNKNOWN during a preview that has not computed it yet (the URLs hold the leader endpoint's name)."""
    cm = maps.get((ns, name))
    if cm is None:
        return None
    try:
        return dict(_get(cm.props, "data") or {})
    except UnknownValueError:
        return _UNKNOWN


def _database_urls(container: Mapping[str, Any], ns: Any, maps: Mapping[Any, PolicyResource]) -> list[Any]:
    """(key, URL or _UNKNOWN) for each database URL the container gets, from `env` or `envFrom` ConfigMaps."""
    found: list[Any] = []
    for env in _items(container.get("env")):
        if env.get("name") in DATABASE_URL_KEYS:
            try:
                found.append((env.get("name"), env.get("value") or ""))
            except UnknownValueError:
                found.append((env.get("name"), _UNKNOWN))
    for source in _items(container.get("envFrom")):
        data = _config_map_data(maps, ns, _get(source, "configMapRef", "name"))
        if data is _UNKNOWN:
            found.append((f"ConfigMap {_get(source, 'configMapRef', 'name')}", _UNKNOWN))
        elif data:
            found += [(k, data[k]) for k in DATABASE_URL_KEYS if k in data]
    return found


def _mounts_ca(
    container: Mapping[str, Any],
    volumes: Mapping[Any, Any],
    path: str,
    ns: Any,
    maps: Mapping[Any, PolicyResource],
) -> str:
    """ "" when the container mounts a CA certificate read-only at `path` (a ConfigMap's key holding PEM,
    or a Secret), else what is wrong."""
    mounts = [m for m in _items(container.get("volumeMounts")) if m.get("mountPath") == path]
    if not mounts:
        return f"mounts nothing at {path}"
    mount = mounts[0]
    if mount.get("readOnly") is not True:
        return f"mounts {path} without readOnly: true"
    volume = volumes.get(mount.get("name")) or {}
    if volume.get("secret"):
        return ""
    name = _get(volume, "configMap", "name")
    if not name:
        return f"mounts {path} from volume {mount.get('name')!r}, not from a ConfigMap holding the CA"
    key = mount.get("subPath") or ""
    for item in _items(_get(volume, "configMap", "items")):
        if item.get("path") == key:
            key = item.get("key")
    data = _config_map_data(maps, ns, name)
    if data is None:
        return f"mounts {path} from ConfigMap {name}, which the stack does not declare"
    if data is not _UNKNOWN and "-----BEGIN CERTIFICATE-----" not in str(data.get(key) or ""):
        return f"mounts {path} from ConfigMap {name}, whose key {key!r} holds no PEM certificate"
    return ""


def database_tls_verified(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every container given a database URL (API Deployments) connects with sslmode=verify-full and finds
    the URL's sslrootcert= mounted read-only from the CA's ConfigMap. During a preview where the URLs are
    still unknown (the leader endpoint's name), the mount is judged at DATABASE_CA_FILE."""
    maps = {
        (_get(r.props, "metadata", "namespace"), _get(r.props, "metadata", "name")): r
        for r in args.resources
        if r.resource_type == CONFIG_MAP
    }
    for d in args.resources:
        if d.resource_type != DEPLOYMENT:
            continue
        ns, name = _get(d.props, "metadata", "namespace"), _get(d.props, "metadata", "name")
        pod = _get(d.props, "spec", "template", "spec") or {}
        volumes = {v.get("name"): v for v in _items(pod.get("volumes"))}
        for c in [*_items(pod.get("initContainers")), *_containers(d.props)]:
            paths = set()
            for key, url in _database_urls(c, ns, maps):
                if url is _UNKNOWN:
                    paths.add(DATABASE_CA_FILE)
                    continue
                if not url:
                    continue  # empty read URL: reads take PUENTE_DATABASE_URL
                query = parse_qs(urlsplit(url).query)
                mode = (query.get("sslmode") or ["(none: libpq's prefer)"])[-1]
                if mode != "verify-full":
                    report(
                        f"Deployment {ns}/{name}: container {c.get('name')}'s {key} asks for sslmode={mode}, "
                        "not verify-full",
                        d.urn,
                    )
                    continue
                root = (query.get("sslrootcert") or [""])[-1]
                if not root:
                    report(
                        f"Deployment {ns}/{name}: container {c.get('name')}'s {key} names no sslrootcert= "
                        "(the CA file to verify the database with)",
                        d.urn,
                    )
                    continue
                paths.add(root)
            for path in sorted(paths):
                problem = _mounts_ca(c, volumes, path, ns, maps)
                if problem:
                    report(
                        f"Deployment {ns}/{name}: container {c.get('name')} connects to the database but "
                        f"{problem}",
                        d.urn,
                    )


# --- the database endpoint -----------------------------------------------------------------------------
POSTGRES_PORT = 5432
PATRONI_REST_PORT = "8008"
# Patroni REST checks that pass only where a session may go: the leader, or the leader/synchronous standby.
PATRONI_CHECKS = ("/primary", "/read-only-sync", "/sync")


def database_endpoint_follows_leader(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A target group in front of PostgreSQL picks members by Patroni's REST API, never by a TCP check
    (which every member passes: writes would land on standbys, reads on stale asynchronous replicas)."""
    if args.resource_type != "aws:lb/targetGroup:TargetGroup" or args.props.get("port") != POSTGRES_PORT:
        return
    check = args.props.get("healthCheck") or {}
    got = (check.get("protocol"), str(check.get("port")), check.get("path"))
    if got[0] != "HTTPS" or got[1] != PATRONI_REST_PORT or got[2] not in PATRONI_CHECKS:
        report(
            f"target group {args.name} forwards to PostgreSQL but its health check is {got}: it must ask "
            f"Patroni (HTTPS, its REST API is TLS only; port {PATRONI_REST_PORT}, path one of "
            f"{', '.join(PATRONI_CHECKS)})",
            None,
        )


# --- the public edge ends in the API's own authentication ----------------------------------------------
# The API authenticates every request itself (Authorization: Bearer <API key>, checked against the keys in
# the replicated database); the edge must lead every public request there, untouched where it matters.
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
HTTP_API_ROUTE = "aws:apigatewayv2/route:Route"
HTTP_API_INTEGRATION = "aws:apigatewayv2/integration:Integration"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
IP_SET = "aws:wafv2/ipSet:IpSet"
VPC = "aws:ec2/vpc:Vpc"
CLIENT_ID_HEADER = "x-client-id"
AUTHORIZATION_HEADER = "authorization"
METRICS_PATH = "/metrics"
# The detailed readiness (per-dependency state, exception text): as internal as /metrics.
READINESS_DETAILS_PATH = "/readyz/details"
# Targets that are the API's processes (instances running its pods, or the pods' addresses); a Lambda or
# another load balancer behind a public listener would answer in its place.
API_TARGET_TYPES = ("instance", "ip")
# Where monitoring networks may be: private address space (RFC 1918, RFC 6598 shared space, IPv6 ULA).
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def _private(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return any(
        net.subnet_of(p)  # type: ignore[arg-type]  # same version: checked first
        for p in PRIVATE_NETWORKS
        if p.version == net.version
    )


def _deps(r: PolicyResource, prop: str, type_: str) -> list[PolicyResource]:
    """The resources of `type_` a property of `r` was computed from (known even during a preview)."""
    return [d for d in r.property_dependencies.get(prop, []) if d.resource_type == type_]


def _urns(r: PolicyResource, prop: str) -> set[str]:
    return {d.urn for d in r.property_dependencies.get(prop, [])}


def _mapping_header(key: str) -> tuple[str, str] | None:
    """`overwrite:header.X-Client-Id` -> ("overwrite", "x-client-id"); None for other mapping keys."""
    action, _, target = key.partition(":")
    if not target.lower().startswith("header."):
        return None
    return action.lower(), target[len("header.") :].lower()


def _block_rules(acl: PolicyResource) -> list[tuple[float, Any]]:
    """(priority, statement) of the web ACL's rules that block."""
    out = []
    for rule in _items(acl.props.get("rules")):
        if _has(rule.get("action") or {}, "block"):
            out.append((float(rule.get("priority") or 0), rule.get("statement") or {}))
    return out


def _refusing(acls: Iterable[PolicyResource], refuses: Any) -> list[tuple[PolicyResource, list[str]]]:
    """(web ACL, the allow rules it evaluates first) for every ACL with a block rule `refuses` accepts;
    an allow rule of a lower priority number ends the evaluation before the block is reached."""
    found = []
    for acl in acls:
        for priority, statement in _block_rules(acl):
            if refuses(statement):
                allowed_first = [
                    str(rule.get("name"))
                    for rule in _items(acl.props.get("rules"))
                    if _has(rule.get("action") or {}, "allow") and float(rule.get("priority") or 0) < priority
                ]
                found.append((acl, allowed_first))
    return found


def _refuses_client_id(statement: Mapping[str, Any]) -> bool:
    size = statement.get("sizeConstraintStatement")
    if not size:
        return False
    header = _get(size, "fieldToMatch", "singleHeader", "name")
    op, limit = size.get("comparisonOperator"), float(size.get("size") or 0)
    present = (op == "GT" and limit == 0) or (op == "GE" and limit <= 1)
    return str(header).lower() == CLIENT_ID_HEADER and present


def _matches_path(statement: Mapping[str, Any], path: str) -> bool:
    match = statement.get("byteMatchStatement")
    return bool(
        match
        and _has(match.get("fieldToMatch") or {}, "uriPath")
        and match.get("positionalConstraint") in ("STARTS_WITH", "EXACTLY")
        and match.get("searchString") == path
    )


def _source_in_ip_set(statement: Mapping[str, Any]) -> bool:
    """An IP set match on the connection's source address (not on X-Forwarded-For, which a client
    writes itself)."""
    ref = statement.get("ipSetReferenceStatement")
    return ref is not None and not _has(ref, "ipSetForwardedIpConfig")


def _refuses_public(path: str) -> Any:
    """A statement that matches `path`, alone or AND-ed with NOT(source address in an IP set) only."""

    def refuses(statement: Mapping[str, Any]) -> bool:
        if _matches_path(statement, path):
            return True
        parts = _items(_get(statement, "andStatement", "statements"))
        if not any(_matches_path(p, path) for p in parts):
            return False
        exceptions = [p for p in parts if not _matches_path(p, path)]
        return all(_source_in_ip_set(_get(p, "notStatement", "statement") or {}) for p in exceptions)

    return refuses


class _Edge:
    """The stack's public edge: which load balancers the internet reaches (directly, or through an API
    Gateway integration), their listeners and web ACLs."""

    def __init__(self, resources: Iterable[PolicyResource]) -> None:
        self.resources = list(resources)
        self.integrations = self.of(HTTP_API_INTEGRATION)
        behind_gateway = {lb.urn for i in self.integrations for lb in self.integration_load_balancers(i)}
        self.internet_facing = {r.urn for r in self.of(LOAD_BALANCER) if r.props.get("internal") is not True}
        self.public = [r for r in self.of(LOAD_BALANCER) if r.urn in self.internet_facing | behind_gateway]

    def of(self, type_: str) -> list[PolicyResource]:
        return [r for r in self.resources if r.resource_type == type_]

    def integration_load_balancers(self, integration: PolicyResource) -> list[PolicyResource]:
        listeners = _deps(integration, "integrationUri", LISTENER)
        return [lb for listener in listeners for lb in _deps(listener, "loadBalancerArn", LOAD_BALANCER)]

    def listeners(self, lb: PolicyResource) -> list[PolicyResource]:
        return [r for r in self.of(LISTENER) if lb.urn in _urns(r, "loadBalancerArn")]

    def rules(self, listener: PolicyResource) -> list[PolicyResource]:
        return [r for r in self.of(LISTENER_RULE) if listener.urn in _urns(r, "listenerArn")]

    def web_acls(self, lb: PolicyResource) -> list[PolicyResource]:
        return [
            acl
            for a in self.of(WEB_ACL_ASSOCIATION)
            if lb.urn in _urns(a, "resourceArn")
            for acl in _deps(a, "webAclArn", WEB_ACL)
        ]


def _answers_for_the_api(r: PolicyResource, actions_prop: str) -> list[str]:
    """What in a listener's (or listener rule's) actions answers instead of the API."""
    problems = []
    for action in _items(r.props.get(actions_prop)):
        kind = action.get("type")
        status = str(_get(action, "fixedResponse", "statusCode") or "")
        if kind == "fixed-response" and status[:1] not in ("4", "5"):
            problems.append(f"a fixed-response {status} answers without the API")
    for tg in _deps(r, actions_prop, TARGET_GROUP):
        if tg.props.get("targetType") not in API_TARGET_TYPES:
            problems.append(f"it forwards to target group {tg.name} of type {tg.props.get('targetType')}")
    return problems


def edge_ends_in_the_api_check(args: StackValidationArgs, report: ReportViolation) -> None:
    edge = _Edge(args.resources)
    for route in edge.of(HTTP_API_ROUTE):
        if not _deps(route, "target", HTTP_API_INTEGRATION):
            report(
                f"API Gateway route {route.name} has no integration: it answers without the API",
                route.urn,
            )
    for i in edge.integrations:
        where = f"API Gateway integration {i.name}"
        if i.props.get("integrationType") != "HTTP_PROXY" or not edge.integration_load_balancers(i):
            report(f"{where} does not proxy to a load balancer listener in front of the API", i.urn)
        mappings = dict(i.props.get("requestParameters") or {})
        actions = {}
        for key, value in mappings.items():
            header = _mapping_header(key)
            if header is None:
                continue
            if header[1] == AUTHORIZATION_HEADER:
                report(f"{where} maps {key}: Authorization must reach the API unchanged", i.urn)
            if header[1] == CLIENT_ID_HEADER:
                actions[header[0]] = str(value)
        client_value_kept = "append" in actions or "$request." in actions.get("overwrite", "")
        if client_value_kept or not ({"remove", "overwrite"} & set(actions)):
            report(
                f"{where} passes a client's X-Client-Id on: map remove:header.{CLIENT_ID_HEADER} (or "
                "overwrite it with a value that is not the request's)",
                i.urn,
            )
        if mappings.get("overwrite:path", "$request.path") != "$request.path":
            report(f"{where} rewrites every path to {mappings['overwrite:path']!r}", i.urn)
    for lb in edge.public:
        for listener in edge.listeners(lb):
            targets = [(listener, "defaultActions")] + [(r, "actions") for r in edge.rules(listener)]
            for r, prop in targets:
                for problem in _answers_for_the_api(r, prop):
                    report(f"public load balancer {lb.name}, {r.resource_type} {r.name}: {problem}", r.urn)
        if lb.urn not in edge.internet_facing:
            continue  # reached through API Gateway only: the integration removes the header
        refusing = _refusing(edge.web_acls(lb), _refuses_client_id)
        if not refusing:
            report(
                f"internet-facing load balancer {lb.name} passes a client's X-Client-Id to the API: a load "
                "balancer cannot remove a request header, so its web ACL must block a request carrying one",
                lb.urn,
            )
        for acl, allowed_first in refusing:
            for name in allowed_first:
                report(f"web ACL {acl.name}: rule {name} allows before X-Client-Id is refused", acl.urn)


def _internal_path_not_public(path: str, args: StackValidationArgs, report: ReportViolation) -> None:
    """`path` (open in the API) only from the monitoring networks: private, and outside every VPC of the
    stack (an API Gateway VPC link reaches the load balancer from inside the VPC)."""
    edge = _Edge(args.resources)
    vpcs = [ipaddress.ip_network(str(v.props["cidrBlock"])) for v in edge.of(VPC) if v.props.get("cidrBlock")]
    for lb in edge.public:
        refusing = _refusing(edge.web_acls(lb), _refuses_public(path))
        if not refusing:
            report(
                f"public load balancer {lb.name} serves {path} to anyone: give it a web ACL rule "
                f"that blocks {path} unless the source is a monitoring network",
                lb.urn,
            )
        for acl, allowed_first in refusing:
            for name in allowed_first:
                report(f"web ACL {acl.name}: rule {name} allows before {path} is refused", acl.urn)
            for ip_set in _deps(acl, "rules", IP_SET):
                for cidr in _items(ip_set.props.get("addresses")):
                    net = ipaddress.ip_network(str(cidr), strict=False)
                    inside = [str(v) for v in vpcs if v.version == net.version and net.overlaps(v)]
                    if not _private(net) or inside:
                        where = f"inside the VPC {inside[0]}" if inside else "not a private network"
                        report(
                            f"web ACL {acl.name} serves {path} to {cidr} ({where}) through IP set "
                            f"{ip_set.name}",
                            ip_set.urn,
                        )


def metrics_not_public(args: StackValidationArgs, report: ReportViolation) -> None:
    _internal_path_not_public(METRICS_PATH, args, report)


def readiness_details_not_public(args: StackValidationArgs, report: ReportViolation) -> None:
    """The detailed readiness names the site's dependencies and their exception text: internal, like
    /metrics (the public /readyz says ready or not, nothing more)."""
    _internal_path_not_public(READINESS_DETAILS_PATH, args, report)


def _rp(name: str, description: str, validate: Any, remediation: str) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, remediation_steps=remediation
    )


def _sp(name: str, description: str, validate: Any, remediation: str) -> StackValidationPolicy:
    return StackValidationPolicy(
        name=name, description=description, validate=validate, remediation_steps=remediation
    )


POLICIES = [
    _rp(
        "encryption-at-rest",
        "Databases, queues, volumes, registries and Kubernetes secrets are encrypted at rest.",
        encryption_at_rest,
        "Set storageEncrypted / kmsMasterKeyId / encrypted block devices / EKS encryptionConfig.",
    ),
    _sp(
        "s3-buckets-encrypted",
        "Every S3 bucket has a server-side encryption configuration.",
        s3_buckets_encrypted,
        "Add aws.s3.BucketServerSideEncryptionConfiguration for the bucket.",
    ),
    _sp(
        "s3-no-public-access",
        "Every S3 bucket blocks public ACLs and policies (all four public access block settings).",
        s3_no_public_access,
        "Add aws.s3.BucketPublicAccessBlock with all four settings true (security.private_bucket).",
    ),
    _sp(
        "backup-bucket-versioned",
        "The database backup bucket is versioned.",
        backup_bucket_versioned,
        "Add aws.s3.BucketVersioning with status Enabled (stacks/puente_cloud/backup.py).",
    ),
    _sp(
        "backup-bucket-encrypted-with-kms",
        "The database backup bucket is encrypted with a KMS key (SSE-KMS).",
        backup_bucket_encrypted_with_kms,
        "Set the bucket's default encryption to aws:kms with its own key.",
    ),
    _sp(
        "backup-bucket-deletion-protected",
        "The database backup bucket has S3 Object Lock with a default retention, and no forceDestroy.",
        backup_bucket_deletion_protected,
        "Create the bucket with object_lock_enabled and add aws.s3.BucketObjectLockConfiguration with a "
        "default retention.",
    ),
    _rp(
        "no-public-database",
        "No database is reachable from the internet.",
        no_public_database,
        "Set publicly_accessible=False; reach the database through the VPC or the VPN.",
    ),
    _sp(
        "open-ingress-only-on-public-listener",
        "0.0.0.0/0 (or ::/0) only on a public load balancer's HTTPS listener and HTTP->HTTPS redirect.",
        open_ingress_only_on_public_listener,
        "Restrict the rule to the networks that need it.",
    ),
    _rp(
        "required-tags",
        f"Every taggable AWS resource carries the tags {', '.join(REQUIRED_TAGS)}.",
        required_tags,
        "Pass tags from the program's Tags helper (stacks/puente_cloud/base.py).",
    ),
    _rp(
        "prod-database-resilience",
        "Production databases are Multi-AZ, keep 7+ days of backups, resist deletion.",
        prod_database_resilience,
        "Set multi_az, backup_retention_period >= 7 and deletion_protection.",
    ),
    _sp(
        "sqs-dead-letter-queue",
        "Every SQS queue that is not itself a DLQ has a redrive policy to one.",
        sqs_dead_letter_queue,
        "Create a DLQ and set redrive_policy with maxReceiveCount.",
    ),
    _sp(
        "dead-letter-queue-alarmed",
        "Every dead-letter queue has a CloudWatch alarm on its depth.",
        dead_letter_queue_alarmed,
        "Add an aws.cloudwatch.MetricAlarm on AWS/SQS ApproximateNumberOfMessagesVisible with dimension "
        "QueueName = the DLQ's name (stacks/puente_cloud/alarms.py).",
    ),
    _rp(
        "alarms-notify",
        "Every CloudWatch alarm notifies someone when it fires and when it clears.",
        alarms_notify,
        "Set alarm_actions and ok_actions to the alarm topic, and leave actions_enabled on.",
    ),
    _rp(
        "probes-present",
        "Serving containers have readiness and liveness probes.",
        probes_present,
        "Add readinessProbe (/readyz) and livenessProbe (/healthz).",
    ),
    _rp(
        "pods-hardened",
        "Containers run as non-root, read-only root FS, no privilege escalation, with resources.",
        pods_hardened,
        "Set the container securityContext and resources requests/limits.",
    ),
    _rp(
        "database-endpoint-follows-leader",
        "Load balancer target groups in front of PostgreSQL check Patroni's REST API (/primary...).",
        database_endpoint_follows_leader,
        "Give the target group an HTTP health check on port 8008, path /primary (writes) or "
        "/read-only-sync (reads).",
    ),
    _sp(
        "edge-ends-in-the-api-check",
        "Every public path (ALB, API Gateway) ends in the API's own authentication: Authorization passed "
        "unchanged, a client's X-Client-Id never passed, nothing answering on the API's behalf.",
        edge_ends_in_the_api_check,
        "Route API Gateway to the API's listener with remove:header.x-client-id and no Authorization "
        "mapping; forward public listeners to the API's target group; give internet-facing load "
        "balancers a web ACL rule blocking requests that carry X-Client-Id.",
    ),
    _sp(
        "metrics-not-public",
        "/metrics through a public load balancer only from private monitoring networks outside the VPC.",
        metrics_not_public,
        "Add a web ACL rule blocking /metrics unless the source is in an IP set of the monitoring networks.",
    ),
    _sp(
        "readiness-details-not-public",
        "/readyz/details (the detailed readiness) through a public load balancer only from private "
        "monitoring networks outside the VPC.",
        readiness_details_not_public,
        "Add a web ACL rule blocking /readyz/details unless the source is in an IP set of the monitoring "
        "networks.",
    ),
    _sp(
        "database-tls-verified",
        "Containers given a database URL connect with sslmode=verify-full and mount the URL's sslrootcert= "
        "(the database's CA) read-only from a ConfigMap holding it.",
        database_tls_verified,
        "End PUENTE_DATABASE_URL/_READ_URL with ?sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt "
        "and mount the CA's ConfigMap there (subPath, readOnly) in every container (database.caCertificate).",
    ),
    _sp(
        "hpa-and-pdb-present",
        "Serving Deployments have a HorizontalPodAutoscaler and a PodDisruptionBudget.",
        hpa_and_pdb_present,
        "Add an autoscaling/v2 HPA and a policy/v1 PDB for the Deployment.",
    ),
]
