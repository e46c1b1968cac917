"""The stack's configuration: read from `pulumi.Config`, validated completely BEFORE any resource exists.

Every problem is reported at once, each line naming the config key (`puente:<key>.<field>`) and what is
wrong, so a bad `Pulumi.<stack>.yaml` fails `pulumi preview` with a readable message and declares nothing.
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi.runtime

from puente import placeholders

ENVIRONMENTS = ("dev", "staging", "prod")
REQUIRED_TAGS = ("Owner", "CostCenter")
# Tags the program sets itself from the project and stack; users may not override them.
PROGRAM_TAGS = ("Project", "Environment", "ManagedBy")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DB_MODES = ("rds", "patroni")
_FQDN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{4,31}$")
_K8S_VERSION = re.compile(r"^1\.(2[89]|3[0-7])$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi)?$")
_SSH_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_NON_PUBLIC = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]


@dataclass(frozen=True)
class Placeholder:
    """An example value still in the config: ``key`` (``puente:edge.hostedZoneId``, ``...Cidrs[0]``),
    its kind (puente.placeholders.FIX) and what is wrong with it."""

    key: str
    kind: str
    what: str

    @property
    def problem(self) -> str:
        return f"{self.key}: {self.what}; {placeholders.FIX[self.kind]}"


class ConfigError(Exception):
    """Raised with one line per invalid key; nothing has been declared when it is raised."""

    def __init__(self, problems: list[str], found: list[Placeholder] | None = None) -> None:
        self.problems = problems
        self.placeholders = found or []  # those of `problems` that are example values
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class VpnConfig:
    customer_gateway_ip: str
    bgp_asn: int
    static_routes_only: bool
    # The tunnels' inside /30s in 169.254.0.0/16 (() = AWS picks them); the on-prem device must not
    # already use them for another connection.
    tunnel_inside_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkConfig:
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    nat_gateway_per_az: bool
    onprem_cidrs: tuple[str, ...]
    vpn: VpnConfig


@dataclass(frozen=True)
class EdgeConfig:
    zone_name: str
    hosted_zone_id: str
    waf_rate_limit: int
    access_log_retention_days: int


@dataclass(frozen=True)
class ClusterConfig:
    kubernetes_version: str
    instance_types: tuple[str, ...]
    node_min: int
    node_desired: int
    node_max: int
    public_access_cidrs: tuple[str, ...]


@dataclass(frozen=True)
class ApiConfig:
    # sha256:<64 hex>: the API image in the stack's ECR repository, by digest. "" = not pushed yet (the
    # first `pulumi up` creates the repository; the API is deployed once the digest is set).
    image_digest: str
    replicas_min: int
    replicas_max: int
    cpu_target_percent: int
    node_port: int
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    idempotency_ttl_seconds: int
    max_body_bytes: int
    log_level: str
    rate_limit_per_second: int
    rate_limit_burst: int


@dataclass(frozen=True)
class PatroniConfig:
    members: int
    instance_type: str
    volume_gb: int
    ssh_public_key: str
    package_mirror_cidrs: tuple[str, ...]
    # The on-prem members' private addresses: targets of the leader endpoint (an NLB) over the VPN.
    onprem_members: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatabaseConfig:
    mode: str
    name: str
    username: str
    engine_version: str
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    backup_retention_days: int
    deletion_protection: bool
    publicly_accessible: bool
    allowed_cidrs: tuple[str, ...]
    patroni: PatroniConfig | None
    # PEM: the CA(s) that signed the certificates of the members the API connects to (sslmode=verify-full).
    ca_certificate: str = ""


@dataclass(frozen=True)
class QueueConfig:
    max_receive_count: int
    visibility_timeout_seconds: int
    message_retention_seconds: int
    dead_letter_retention_seconds: int


@dataclass(frozen=True)
class DnsConfig:
    # "" = a cloud-only stack: no on-prem site behind a PRIMARY failover record.
    onprem_gateway_address: str
    health_check_regions: tuple[str, ...]

    @property
    def hybrid(self) -> bool:
        """The on-prem gateway is the PRIMARY failover record and the cloud edge its SECONDARY."""
        return bool(self.onprem_gateway_address)


@dataclass(frozen=True)
class AlarmsConfig:
    """Who hears the CloudWatch alarms (SNS subscriptions) and the thresholds that are a choice."""

    email_endpoints: tuple[str, ...]
    https_endpoints: tuple[str, ...]
    # The oldest dead-lettered message may wait this long for a redrive before its own alarm.
    dead_letter_max_age_seconds: int
    # Share of the ALB's requests answered 5xx (by the ALB or the API) that raises the alarm.
    alb_5xx_percent: int
    database_cpu_percent: int


@dataclass(frozen=True)
class BackupConfig:
    """The pgBackRest repository's bucket (Patroni mode): where in it, and how long nothing can delete."""

    # pgBackRest's repo path (repo1-path): objects live under this prefix, without its leading slash.
    path: str
    # S3 Object Lock's default retention: every version written stays undeletable this long.
    lock_days: int
    lock_mode: str
    # Versions pgBackRest deleted (expire) or replaced are purged this long after, by the lifecycle rule.
    noncurrent_retention_days: int


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    environment: str
    region: str
    tags: Mapping[str, str]
    network: NetworkConfig
    edge: EdgeConfig
    cluster: ClusterConfig
    api: ApiConfig
    database: DatabaseConfig
    queue: QueueConfig
    dns: DnsConfig
    alarms: AlarmsConfig
    backup: BackupConfig
    database_password: pulumi.Output[str]

    @property
    def production(self) -> bool:
        return self.environment == "prod"


class _Reader:
    """Typed access to one config object, collecting problems instead of stopping at the first."""

    def __init__(self, key: str, data: Any, problems: list[str]) -> None:
        self.key = key
        self.problems = problems
        if data is not None and not isinstance(data, dict):
            self.fail("", f"must be an object, got {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = data or {}

    def fail(self, field: str, message: str) -> None:
        self.problems.append(f"{self.key}{'.' + field if field else ''}: {message}")

    def _get(self, field: str, default: Any) -> Any:
        if field not in self.data:
            if default is _REQUIRED:
                self.fail(field, "is required")
            return None if default is _REQUIRED else default
        return self.data[field]

    def text(self, field: str, default: Any = None, pattern: re.Pattern[str] | None = None) -> str:
        value = self._get(field, _REQUIRED if default is None else default)
        if value is None:
            return ""
        if not isinstance(value, str) or not value:
            self.fail(field, f"must be a non-empty string, got {value!r}")
            return ""
        if pattern is not None and not pattern.match(value):
            self.fail(field, f"{value!r} does not match {pattern.pattern}")
        return value

    def integer(self, field: str, default: Any = None, lo: int = 0, hi: int = 2**31) -> int:
        value = self._get(field, _REQUIRED if default is None else default)
        if value is None:
            return lo
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"must be an integer, got {value!r}")
            return lo
        if not lo <= value <= hi:
            self.fail(field, f"must be between {lo} and {hi}, got {value}")
        return value

    def flag(self, field: str, default: Any = None) -> bool:
        value = self._get(field, _REQUIRED if default is None else default)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(field, f"must be true or false, got {value!r}")
            return False
        return value

    def choice(self, field: str, choices: tuple[str, ...], default: Any = None) -> str:
        value = self.text(field, default)
        if value and value not in choices:
            self.fail(field, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def items(self, field: str, default: Any = None) -> list[Any]:
        value = self._get(field, _REQUIRED if default is None else default)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(field, f"must be a list, got {value!r}")
            return []
        return value

    def cidrs(self, field: str, default: Any = None, allow_any: bool = False) -> tuple[str, ...]:
        out = []
        for item in self.items(field, default):
            try:
                net = ipaddress.ip_network(str(item), strict=True)
            except ValueError:
                self.fail(field, f"{item!r} is not a valid CIDR (network address/prefix, e.g. 10.0.0.0/16)")
                continue
            if net.prefixlen == 0 and not allow_any:
                self.fail(field, f"{item} opens it to the whole internet; list the networks that need access")
                continue
            out.append(str(net))
        return tuple(out)

    def public_ip(self, field: str) -> str:
        value = self.text(field)
        if not value:
            return ""
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            self.fail(field, f"{value!r} is not an IPv4 address")
            return ""
        if addr.version != 4 or any(addr in n for n in _NON_PUBLIC):
            self.fail(field, f"{value} is not a public IPv4 address (AWS must reach it over the internet)")
        return value

    def obj(self, field: str, required: bool = True) -> _Reader | None:
        value = self._get(field, _REQUIRED if required else None)
        if value is None:
            return None if not required else _Reader(f"{self.key}.{field}", {}, self.problems)
        return _Reader(f"{self.key}.{field}", value, self.problems)

    def unknown_fields(self, known: set[str]) -> None:
        for extra in sorted(set(self.data) - known):
            self.fail(extra, "is not a known setting (typo?)")


_REQUIRED = object()
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})$"
)


def _read_object(cfg: pulumi.Config, name: str, problems: list[str], required: bool = True) -> _Reader:
    key = f"{cfg.name}:{name}"
    try:
        data = cfg.get_object(name)
    except Exception as exc:  # the engine's message for bad JSON/YAML is precise enough
        problems.append(f"{key}: {exc}")
        data = {}
    if data is None and required:
        problems.append(f"{key}: is required")
    return _Reader(key, data, problems)


def _tags(cfg: pulumi.Config, problems: list[str]) -> dict[str, str]:
    reader = _read_object(cfg, "tags", problems)
    tags: dict[str, str] = {}
    for k, v in reader.data.items():
        if not isinstance(k, str) or not isinstance(v, str) or not v:
            reader.fail(str(k), f"tag values must be non-empty strings, got {v!r}")
        elif k.lower().startswith("aws:") or len(k) > 128 or len(v) > 256:
            reader.fail(k, "tag keys may not start with aws: and are limited to 128/256 characters")
        elif k in PROGRAM_TAGS:
            reader.fail(k, "is set by the program from the project and stack; remove it")
        else:
            tags[k] = v
    for required in REQUIRED_TAGS:
        if required not in reader.data:
            reader.fail(required, "required tag is missing (every resource carries it)")
    return tags


def _network(cfg: pulumi.Config, region: str, production: bool, problems: list[str]) -> NetworkConfig:
    r = _read_object(cfg, "network", problems)
    r.unknown_fields({"vpcCidr", "availabilityZones", "natGateways", "onpremCidrs", "vpn"})
    vpc = r.text("vpcCidr")
    vpc_net: ipaddress.IPv4Network | None = None
    try:
        parsed = ipaddress.ip_network(vpc, strict=True) if vpc else None
        if parsed is not None and (
            parsed.version != 4 or not 16 <= parsed.prefixlen <= 22 or not parsed.is_private
        ):
            r.fail("vpcCidr", f"{vpc} must be a private IPv4 network between /16 and /22")
        elif isinstance(parsed, ipaddress.IPv4Network):
            vpc_net = parsed
    except ValueError:
        r.fail("vpcCidr", f"{vpc!r} is not a valid CIDR (network address/prefix, e.g. 10.60.0.0/16)")
    azs = [str(a) for a in r.items("availabilityZones")]
    need = 3 if production else 2
    if len(azs) < need or len(set(azs)) != len(azs):
        r.fail("availabilityZones", f"needs at least {need} distinct zones in this environment, got {azs}")
    for az in azs:
        if not (az.startswith(region) and len(az) == len(region) + 1):
            r.fail("availabilityZones", f"{az!r} is not a zone of region {region}")
    nat = r.choice("natGateways", ("single", "perAz"), "perAz" if production else "single")
    if production and nat == "single":
        r.fail("natGateways", "prod needs perAz: a single NAT gateway is a single point of failure")
    onprem = r.cidrs("onpremCidrs")
    if not onprem:
        r.fail("onpremCidrs", "at least one on-prem network is needed for the site-to-site VPN")
    for c in onprem:
        if vpc_net is not None and ipaddress.ip_network(c).overlaps(vpc_net):
            r.fail("onpremCidrs", f"{c} overlaps vpcCidr {vpc}: the VPN could not route between them")
    vr = r.obj("vpn")
    assert vr is not None
    vr.unknown_fields({"customerGatewayIp", "bgpAsn", "staticRoutesOnly", "tunnelInsideCidrs"})
    vpn = VpnConfig(
        customer_gateway_ip=vr.public_ip("customerGatewayIp"),
        bgp_asn=vr.integer("bgpAsn", 65000, 1, 4294967294),
        static_routes_only=vr.flag("staticRoutesOnly", True),
        tunnel_inside_cidrs=_tunnel_inside_cidrs(vr),
    )
    return NetworkConfig(vpc, tuple(azs), nat == "perAz", onprem, vpn)


_LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
# What AWS refuses as a tunnel's inside CIDR (its own link-local services).
_RESERVED_INSIDE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/30",
        "169.254.1.0/30",
        "169.254.2.0/30",
        "169.254.3.0/30",
        "169.254.4.0/30",
        "169.254.5.0/30",
        "169.254.169.252/30",
    )
)


def _tunnel_inside_cidrs(r: _Reader) -> tuple[str, ...]:
    """network.vpn.tunnelInsideCidrs: optional, then one /30 per tunnel inside 169.254.0.0/16."""
    cidrs = r.cidrs("tunnelInsideCidrs", [])
    if not cidrs:
        return ()
    nets = [ipaddress.ip_network(c) for c in cidrs]
    if len(nets) != 2 or nets[0] == nets[1]:
        r.fail("tunnelInsideCidrs", f"needs two different /30 networks, one per tunnel, got {list(cidrs)}")
    for net in nets:
        if net.prefixlen != 30 or not net.subnet_of(_LINK_LOCAL):  # type: ignore[arg-type]
            r.fail("tunnelInsideCidrs", f"{net} is not a /30 inside 169.254.0.0/16 (what AWS accepts)")
        elif net in _RESERVED_INSIDE:
            r.fail("tunnelInsideCidrs", f"{net} is reserved by AWS; choose another /30 of 169.254.0.0/16")
    return cidrs


def _edge(cfg: pulumi.Config, problems: list[str]) -> EdgeConfig:
    r = _read_object(cfg, "edge", problems)
    r.unknown_fields({"zoneName", "hostedZoneId", "wafRateLimit", "accessLogRetentionDays"})
    return EdgeConfig(
        # The public Route 53 zone; the API's name in it comes from templates/failover/policy.yml.
        zone_name=r.text("zoneName", pattern=_FQDN),
        hosted_zone_id=r.text("hostedZoneId", pattern=_ZONE_ID),
        # WAF counts requests per client IP over 5 minutes.
        waf_rate_limit=r.integer("wafRateLimit", 2000, 100, 2_000_000_000),
        access_log_retention_days=r.integer("accessLogRetentionDays", 90, 1, 3650),
    )


def _cluster(cfg: pulumi.Config, production: bool, problems: list[str]) -> ClusterConfig:
    r = _read_object(cfg, "cluster", problems)
    r.unknown_fields(
        {"kubernetesVersion", "instanceTypes", "nodeMin", "nodeDesired", "nodeMax", "publicAccessCidrs"}
    )
    node_min = r.integer("nodeMin", None, 2 if production else 1, 100)
    node_desired = r.integer("nodeDesired", None, 1, 100)
    node_max = r.integer("nodeMax", None, 1, 100)
    if not node_min <= node_desired <= node_max:
        r.fail(
            "nodeDesired",
            f"needs nodeMin <= nodeDesired <= nodeMax, got {node_min}/{node_desired}/{node_max}",
        )
    types = [str(t) for t in r.items("instanceTypes")]
    if not types or any(not _INSTANCE_TYPE.match(t) for t in types):
        r.fail("instanceTypes", f"needs at least one EC2 instance type like t3.medium, got {types}")
    return ClusterConfig(
        kubernetes_version=r.text("kubernetesVersion", pattern=_K8S_VERSION),
        instance_types=tuple(types),
        node_min=node_min,
        node_desired=node_desired,
        node_max=node_max,
        # Who may reach the EKS API from outside the VPC (the machine running `pulumi up`); empty =
        # private endpoint only.
        public_access_cidrs=r.cidrs("publicAccessCidrs", []),
    )


def _api(cfg: pulumi.Config, production: bool, problems: list[str]) -> ApiConfig:
    r = _read_object(cfg, "api", problems)
    if "imageTag" in r.data:
        r.fail(
            "imageTag",
            "is no longer read: the image is deployed by digest; set imageDigest (sha256:..., what "
            "`podman push --digestfile` writes; docs/CLOUD.md) and remove imageTag",
        )
        r.data.pop("imageTag")
    r.unknown_fields(
        {
            "imageDigest",
            "replicasMin",
            "replicasMax",
            "cpuTargetPercent",
            "nodePort",
            "cpuRequest",
            "memoryRequest",
            "cpuLimit",
            "memoryLimit",
            "idempotencyTtlSeconds",
            "maxBodyBytes",
            "logLevel",
            "rateLimitPerSecond",
            "rateLimitBurst",
        }
    )
    lo = r.integer("replicasMin", None, 2 if production else 1, 100)
    hi = r.integer("replicasMax", None, 1, 100)
    if hi < lo:
        r.fail("replicasMax", f"must be >= replicasMin ({lo}), got {hi}")
    return ApiConfig(
        image_digest=r.text("imageDigest", pattern=placeholders.DIGEST) if "imageDigest" in r.data else "",
        replicas_min=lo,
        replicas_max=hi,
        cpu_target_percent=r.integer("cpuTargetPercent", 70, 10, 95),
        node_port=r.integer("nodePort", 30080, 30000, 32767),
        cpu_request=r.text("cpuRequest", "250m", _QUANTITY),
        memory_request=r.text("memoryRequest", "256Mi", _QUANTITY),
        cpu_limit=r.text("cpuLimit", "1", _QUANTITY),
        memory_limit=r.text("memoryLimit", "512Mi", _QUANTITY),
        idempotency_ttl_seconds=r.integer("idempotencyTtlSeconds", 86400, 60, 30 * 86400),
        max_body_bytes=r.integer("maxBodyBytes", 65536, 1024, 10 * 1024 * 1024),
        log_level=r.choice("logLevel", LOG_LEVELS, "INFO"),
        rate_limit_per_second=r.integer("rateLimitPerSecond", 100, 0, 100_000),
        rate_limit_burst=r.integer("rateLimitBurst", 200, 1, 1_000_000),
    )


def _database(
    cfg: pulumi.Config, network: NetworkConfig, production: bool, problems: list[str]
) -> DatabaseConfig:
    r = _read_object(cfg, "database", problems)
    r.unknown_fields(
        {
            "mode",
            "name",
            "username",
            "engineVersion",
            "instanceClass",
            "allocatedStorageGb",
            "maxAllocatedStorageGb",
            "multiAz",
            "backupRetentionDays",
            "deletionProtection",
            "publiclyAccessible",
            "allowedCidrs",
            "patroni",
            "caCertificate",
        }
    )
    mode = r.choice("mode", DB_MODES, "rds")
    public = r.flag("publiclyAccessible", False)
    if public:
        r.fail(
            "publiclyAccessible", "a public database is refused: clients reach it through the VPC or the VPN"
        )
    multi_az = r.flag("multiAz", True)
    retention = r.integer("backupRetentionDays", 7, 1, 35)
    deletion_protection = r.flag("deletionProtection", production)
    if production:
        if not multi_az:
            r.fail("multiAz", "prod requires Multi-AZ")
        if retention < 7:
            r.fail("backupRetentionDays", f"prod requires at least 7 days of backups, got {retention}")
        if not deletion_protection:
            r.fail("deletionProtection", "prod requires deletion protection")
    allocated = r.integer("allocatedStorageGb", 20, 20, 65536)
    max_allocated = r.integer("maxAllocatedStorageGb", 100, 20, 65536)
    if max_allocated < allocated:
        r.fail("maxAllocatedStorageGb", f"must be >= allocatedStorageGb ({allocated})")
    patroni = None
    pr = r.obj("patroni", required=(mode == "patroni"))
    if pr is not None:
        pr.unknown_fields(
            {"members", "instanceType", "volumeGb", "sshPublicKey", "packageMirrorCidrs", "onpremMembers"}
        )
        patroni = PatroniConfig(
            members=pr.integer("members", 1, 1, 3),
            instance_type=pr.text("instanceType", "t3.medium", _INSTANCE_TYPE),
            volume_gb=pr.integer("volumeGb", 50, 10, 16384),
            ssh_public_key=pr.text("sshPublicKey", pattern=_SSH_KEY),
            # Where the members may fetch packages (HTTP/HTTPS): an apt mirror or proxy, never the internet.
            package_mirror_cidrs=pr.cidrs("packageMirrorCidrs", []),
            onprem_members=_onprem_members(pr, network),
        )
    return DatabaseConfig(
        mode=mode,
        name=r.text("name", "puente", re.compile(r"^[a-z][a-z0-9_]{0,62}$")),
        username=r.text("username", "puente", re.compile(r"^[a-z][a-z0-9_]{0,15}$")),
        engine_version=r.text("engineVersion", "15", re.compile(r"^1[3-8](\.[0-9]+)?$")),
        instance_class=r.text("instanceClass", "db.t4g.medium", re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")),
        allocated_storage_gb=allocated,
        max_allocated_storage_gb=max_allocated,
        multi_az=multi_az,
        backup_retention_days=retention,
        deletion_protection=deletion_protection,
        publicly_accessible=public,
        # Who besides the API may reach PostgreSQL (on-prem replication, operators); default on-prem.
        allowed_cidrs=r.cidrs("allowedCidrs", list(network.onprem_cidrs)),
        patroni=patroni,
        ca_certificate=_ca_certificate(r),
    )


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\s]*?)-----END \1-----")


def ca_bundle_problem(text: str) -> str:
    """Why `text` is not a usable CA bundle (PEM certificates, each one a CA), or "" when it is. Parsed by
    OpenSSL (Python's ssl, as libpq's OpenSSL will read the file the URL's sslrootcert= names)."""
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        return (
            "is not PEM: paste the CA certificate(s), -----BEGIN CERTIFICATE----- ... "
            "-----END CERTIFICATE-----"
        )
    others = sorted({kind for kind, _ in blocks if kind != "CERTIFICATE"})
    if others:
        return f"holds {', '.join(others)} PEM blocks: only the CA's certificate(s) belong here (never a key)"
    if _PEM_BLOCK.sub("", text).strip():
        return "holds text outside its PEM blocks: only -----BEGIN/END CERTIFICATE----- blocks"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=text)
    except ssl.SSLError as exc:
        return f"does not parse as X.509 certificate(s) ({exc.reason or exc})"
    stats = context.cert_store_stats()
    if stats["x509_ca"] != stats["x509"]:
        return (
            f"{stats['x509'] - stats['x509_ca']} of its certificates is not a CA (basicConstraints CA:TRUE): "
            "give the CA that signed the members' certificates, not a member's own certificate"
        )
    return ""


def _ca_certificate(r: _Reader) -> str:
    """database.caCertificate: the CA bundle (PEM) the API verifies the database's certificates with
    (sslmode=verify-full): the CA of the Patroni members' certificates, or Amazon RDS's bundle for RDS."""
    text = r.text("caCertificate")
    if not text or placeholders.marker_phrases(text):
        return text  # missing: "is required"; a CHANGE-ME marker: listed with the other placeholders
    problem = ca_bundle_problem(text)
    if problem:
        r.fail("caCertificate", problem)
    return text


# The addresses an NLB accepts as IP targets outside its VPC (RFC 1918 and RFC 6598).
_NLB_REMOTE_TARGETS = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
]


def _onprem_members(r: _Reader, network: NetworkConfig) -> tuple[str, ...]:
    """database.patroni.onpremMembers: the on-prem Patroni members the cloud API's leader endpoint (an
    internal NLB) also targets, so it finds the leader on either site. Private IPv4 addresses inside
    network.onpremCidrs (the NLB reaches them over the VPN)."""
    out = []
    onprem = [ipaddress.ip_network(c) for c in network.onprem_cidrs]
    items = r.items("onpremMembers", [])
    if not items:
        r.fail(
            "onpremMembers",
            "list the on-prem Patroni members' addresses: the cloud API's leader endpoint must reach the "
            "leader on either site",
        )
    for item in items:
        try:
            addr = ipaddress.ip_address(str(item))
        except ValueError:
            r.fail("onpremMembers", f"{item!r} is not an IPv4 address")
            continue
        if addr.version != 4 or not any(addr in n for n in _NLB_REMOTE_TARGETS):
            r.fail(
                "onpremMembers",
                f"{addr} is not a private IPv4 address (an NLB targets no other outside its VPC)",
            )
        elif not any(addr in n for n in onprem):
            r.fail("onpremMembers", f"{addr} is outside network.onpremCidrs: the VPN does not route to it")
        else:
            out.append(str(addr))
    if len(set(out)) != len(out):
        r.fail("onpremMembers", f"lists an address twice: {out}")
    return tuple(out)


def _queue(cfg: pulumi.Config, problems: list[str]) -> QueueConfig:
    r = _read_object(cfg, "queue", problems)
    r.unknown_fields(
        {
            "maxReceiveCount",
            "visibilityTimeoutSeconds",
            "messageRetentionSeconds",
            "deadLetterRetentionSeconds",
        }
    )
    retention = r.integer("messageRetentionSeconds", 345600, 60, 1209600)
    dlq = r.integer("deadLetterRetentionSeconds", 1209600, 60, 1209600)
    if dlq < retention:
        r.fail(
            "deadLetterRetentionSeconds",
            "must be >= messageRetentionSeconds, or failed messages expire first",
        )
    return QueueConfig(
        max_receive_count=r.integer("maxReceiveCount", 5, 1, 1000),
        visibility_timeout_seconds=r.integer("visibilityTimeoutSeconds", 60, 0, 43200),
        message_retention_seconds=retention,
        dead_letter_retention_seconds=dlq,
    )


# The only regions Route 53 runs health checkers in (its API's HealthCheckRegion values); any other is
# refused by the API at `pulumi up`, after the stack's other resources were already created.
ROUTE53_CHECKER_REGIONS = (
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
)


def _dns(cfg: pulumi.Config, problems: list[str]) -> DnsConfig:
    r = _read_object(cfg, "dns", problems, required=False)
    r.unknown_fields({"onpremGatewayAddress", "healthCheckRegions"})
    regions = tuple(str(x) for x in r.items("healthCheckRegions", []))
    if regions and len(regions) < 3:
        r.fail("healthCheckRegions", "Route 53 needs at least 3 checker regions (or leave it empty for all)")
    unknown = [x for x in regions if x not in ROUTE53_CHECKER_REGIONS]
    if unknown:
        r.fail(
            "healthCheckRegions",
            f"Route 53 has no health checkers in {', '.join(unknown)}; "
            f"choose among {', '.join(ROUTE53_CHECKER_REGIONS)} (or leave it empty for all)",
        )
    # Optional: without it the stack is cloud-only (the API's name is a plain alias to the ALB).
    gateway = r.public_ip("onpremGatewayAddress") if "onpremGatewayAddress" in r.data else ""
    return DnsConfig(onprem_gateway_address=gateway, health_check_regions=regions)


def _endpoints(r: _Reader, field: str, valid: Any, what: str) -> tuple[str, ...]:
    values = [str(v) for v in r.items(field, [])]
    for value in values:
        if not valid(value):
            r.fail(field, f"{value!r} is not {what}")
    if len(set(values)) != len(values):
        r.fail(field, f"lists an endpoint twice: {values}")
    return tuple(values)


def _https_url(value: str) -> bool:
    try:
        url = urlsplit(value)
    except ValueError:
        return False
    return url.scheme == "https" and bool(url.hostname) and not url.username and not url.password


def _alarms(cfg: pulumi.Config, problems: list[str]) -> AlarmsConfig:
    r = _read_object(cfg, "alarms", problems)
    r.unknown_fields(
        {"emailEndpoints", "httpsEndpoints", "deadLetterMaxAgeSeconds", "alb5xxPercent", "databaseCpuPercent"}
    )
    emails = _endpoints(r, "emailEndpoints", _EMAIL.match, "an e-mail address (name@domain)")
    urls = _endpoints(
        r,
        "httpsEndpoints",
        _https_url,
        "an https:// URL with a host and no credentials (SNS posts the alarm there; plain http is refused)",
    )
    if r.data and not emails and not urls:
        r.fail(
            "emailEndpoints",
            "an alarm nobody receives is not an alarm: list at least one e-mail address or https endpoint "
            "(emailEndpoints, httpsEndpoints)",
        )
    return AlarmsConfig(
        email_endpoints=emails,
        https_endpoints=urls,
        dead_letter_max_age_seconds=r.integer("deadLetterMaxAgeSeconds", 3600, 300, 1209600),
        alb_5xx_percent=r.integer("alb5xxPercent", 5, 1, 100),
        database_cpu_percent=r.integer("databaseCpuPercent", 80, 10, 100),
    )


LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
_REPO_PATH = re.compile(r"^(/[a-z0-9][a-z0-9._-]*)+$")


def _backup(cfg: pulumi.Config, production: bool, problems: list[str]) -> BackupConfig:
    r = _read_object(cfg, "backup", problems, required=False)
    r.unknown_fields({"path", "lockDays", "lockMode", "noncurrentRetentionDays"})
    lock_days = r.integer("lockDays", 14, 1, 3650)
    if production and lock_days < 7:
        r.fail("lockDays", f"prod requires at least 7 days of object lock, got {lock_days}")
    retention = r.integer("noncurrentRetentionDays", max(30, lock_days), 1, 3650)
    if retention < lock_days:
        r.fail(
            "noncurrentRetentionDays",
            f"must be >= lockDays ({lock_days}): S3 keeps locked versions anyway, so a shorter rule only "
            "misleads",
        )
    return BackupConfig(
        path=r.text("path", "/pgbackrest", _REPO_PATH),
        lock_days=lock_days,
        lock_mode=r.choice("lockMode", LOCK_MODES, "COMPLIANCE" if production else "GOVERNANCE"),
        noncurrent_retention_days=retention,
    )


def _hybrid_needs_patroni(database: DatabaseConfig, dns: DnsConfig, problems: list[str]) -> None:
    """A stack that fails over from the on-prem site must fail over to a copy of its data."""
    if dns.hybrid and database.mode == "rds":
        problems.append(
            "puente:database.mode: rds is refused in a hybrid stack (puente:dns.onpremGatewayAddress puts "
            "the on-prem site behind the PRIMARY failover record): an RDS instance is standalone and "
            "nothing replicates the on-prem database into it, so failing over to the cloud would serve an "
            "empty database. Use mode: patroni (cloud members of the cross-site Patroni cluster), or remove "
            "dns.onpremGatewayAddress for a cloud-only stack"
        )


TOP_LEVEL_KEYS = frozenset(
    {
        "environment",
        "tags",
        "network",
        "edge",
        "cluster",
        "api",
        "database",
        "queue",
        "dns",
        "alarms",
        "backup",
        "databasePassword",
    }
)


def _all_config_keys() -> list[str]:
    """Every config key the engine handed to the program (`<project>:<key>` and other namespaces)."""
    return list(pulumi.runtime.config.CONFIG.get())


_PASSWORD_FORBIDDEN = re.compile(r"[/@\" ]")


def _walk(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _walk(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


def _placeholders(cfg: pulumi.Config) -> list[Placeholder]:
    """Every example value in the project's config (the shipped Pulumi.<stack>.yaml files are examples:
    documentation addresses and domains, placeholder zone ids, CHANGE-ME markers, example SSH keys).
    The secret password is judged by _password, never echoed."""
    found = []
    for key in sorted(_all_config_keys()):
        if key.partition(":")[0] != cfg.name or key == f"{cfg.name}:databasePassword":
            continue
        raw = pulumi.runtime.get_config(key) or ""
        try:
            value = json.loads(raw) if raw[:1] in ("{", "[") else raw
        except ValueError:
            value = raw
        for path, text in _walk(value, key):
            found += [Placeholder(path, kind, what) for kind, what in placeholders.all_phrases(text, path)]
            email = _EMAIL.match(text.strip())
            domain = placeholders.doc_domain(email.group(1)) if email else ""
            if domain:  # an e-mail address: its domain is what must be real
                what = f"{email.group(1)} is in {domain}, a documentation domain (RFC 2606)"  # type: ignore[union-attr]
                found.append(Placeholder(path, "domain", what))
    return found


def _password(cfg: pulumi.Config, problems: list[str]) -> pulumi.Output[str]:
    key = f"{cfg.name}:databasePassword"
    hint = f"set it with `pulumi config set --secret {key.split(':')[1]}`"
    # Read the raw value only to validate it up front; the program uses the secret Output.
    raw = pulumi.runtime.get_config(key)
    if raw is None:
        problems.append(f"{key}: is required ({hint})")
    elif not pulumi.runtime.is_config_secret(key):
        problems.append(f"{key}: must be stored as a secret ({hint})")
    elif len(raw) < 16 or len(raw) > 128 or _PASSWORD_FORBIDDEN.search(raw):
        problems.append(f'{key}: needs 16-128 characters without / @ " or space (RDS rules)')
    elif placeholders.marker_phrases(raw):
        problems.append(f"{key}: is still a placeholder such as CHANGE-ME ({hint})")
    return cfg.get_secret("databasePassword") or pulumi.Output.secret("")


def load() -> StackConfig:
    """Read and validate the whole stack configuration; raise ConfigError listing every problem."""
    cfg = pulumi.Config()
    problems: list[str] = []
    stack = pulumi.get_stack()
    region = pulumi.Config("aws").get("region") or ""
    if not region:
        problems.append("aws:region: is required (pulumi config set aws:region eu-west-1)")
    environment = cfg.get("environment") or ""
    if environment not in ENVIRONMENTS:
        problems.append(
            f"{cfg.name}:environment: must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}"
        )
    production = environment == "prod"
    for key in sorted(_all_config_keys()):
        namespace, _, name = key.partition(":")
        if namespace == cfg.name and name not in TOP_LEVEL_KEYS:
            problems.append(f"{key}: is not a known setting (typo?)")
    tags = _tags(cfg, problems)
    network = _network(cfg, region, production, problems)
    database = _database(cfg, network, production, problems)
    dns = _dns(cfg, problems)
    _hybrid_needs_patroni(database, dns, problems)
    conf = StackConfig(
        project=pulumi.get_project(),
        stack=stack,
        environment=environment,
        region=region,
        tags=tags,
        network=network,
        edge=_edge(cfg, problems),
        cluster=_cluster(cfg, production, problems),
        api=_api(cfg, production, problems),
        database=database,
        queue=_queue(cfg, problems),
        dns=dns,
        alarms=_alarms(cfg, problems),
        backup=_backup(cfg, production, problems),
        database_password=_password(cfg, problems),
    )
    found = _placeholders(cfg)
    problems += [p.problem for p in found]
    if problems:
        raise ConfigError(problems, found)
    return conf
