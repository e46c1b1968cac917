"""Settings of the reference API, read from environment variables only.

The variable names are a contract shared with ``templates/api/runtime.env.j2`` (systemd environment
file on-prem, Kubernetes ConfigMap in the cloud) and ``templates/api/secrets.env.j2``. Every value is
validated at start-up; a bad one raises :class:`SettingsError` whose message names the variable, so
``puente-api serve`` can exit non-zero with a sentence an operator can act on.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from psycopg.conninfo import make_conninfo

_SITE_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_ROLES = ("primary", "secondary")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True)
class BrokerURL:
    """A parsed ``PUENTE_BROKER_URL``: ``amqp://user@host:5672/vhost``, ``amqps://user@host:5671/vhost``
    (TLS, the server's certificate verified; ``?cacertfile=PATH`` names the CA, else the system's) or
    ``sqs://QUEUE?region=R``."""

    scheme: str  # "amqp", "amqps" or "sqs"
    host: str = ""
    port: int = 5672
    username: str = ""
    password: str = ""
    vhost: str = "/"
    queue: str = ""  # SQS: the FIFO queue's name (ends in .fifo)
    region: str = ""
    endpoint_url: str | None = None
    ca_file: str = ""  # amqps: CA bundle the broker's certificate must chain to ("" = the system's)

    @property
    def is_amqp(self) -> bool:
        return self.scheme in ("amqp", "amqps")


@dataclass(frozen=True)
class Settings:
    site: str
    site_role: str
    database_url: str
    database_password: str
    broker: BrokerURL
    idempotency_ttl_seconds: int = 86400
    max_body_bytes: int = 65536
    log_level: str = "INFO"
    db_pool_size: int = 10
    # Where reads go (GET routes, /readyz?scope=read): the site's read frontend, which prefers the site's
    # own member while it is the leader or the synchronous standby. Empty: the same as database_url.
    database_read_url: str = ""
    # Peers whose X-Forwarded-For / X-Forwarded-Proto the server believes (addresses or networks, comma-
    # separated): the load balancers in front of the API, never "*" (any caller could name any address).
    forwarded_allow_ips: str = "127.0.0.1"
    # Per-client token bucket of each API process (ratelimit.py): requests per second and burst size;
    # 0 requests per second turns the limit off.
    rate_limit_per_second: int = 100
    rate_limit_burst: int = 200

    @property
    def conninfo(self) -> str:
        """libpq connection string: the URL, the password kept apart, and guard-rail options."""
        return self._conninfo(self.database_url)

    @property
    def read_conninfo(self) -> str:
        """The same for reads; equal to :attr:`conninfo` when no read URL is set."""
        return self._conninfo(self.database_read_url or self.database_url)

    def _conninfo(self, url: str) -> str:
        extra: dict[str, str | int] = {"connect_timeout": 3, "application_name": f"puente-api@{self.site}"}
        if self.database_password:
            extra["password"] = self.database_password
        return make_conninfo(url, **extra)


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def parse_forwarded_allow_ips(raw: str, name: str = "PUENTE_FORWARDED_ALLOW_IPS") -> str:
    """Comma-separated addresses or networks (10.89.1.10,10.0.0.0/16); empty means 127.0.0.1 only."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        return "127.0.0.1"
    for item in items:
        if item == "*":
            raise SettingsError(
                f"{name} must list the load balancers' addresses, not '*' (anyone could forge them)"
            )
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(f"{name} must hold IP addresses or networks, got {item!r}") from None
    return ",".join(items)


def parse_database_url(raw: str, name: str = "PUENTE_DATABASE_URL") -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SettingsError(f"{name} must start with postgresql://, got {parts.scheme or raw!r}")
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts and "host=" not in parts.query:
        raise SettingsError(f"{name} must name a host (postgresql://user@host:5432/db)")
    if not parts.path.strip("/"):
        raise SettingsError(f"{name} must name a database (postgresql://user@host:5432/db)")
    for host in filter(None, hosts.split(",")):  # libpq takes a list of hosts (failover)
        port = host.rpartition("]")[2].partition(":")[2] if host.startswith("[") else host.partition(":")[2]
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise SettingsError(f"{name} has an invalid port {port!r}")
    return raw


def parse_broker_url(raw: str, password: str = "", name: str = "PUENTE_BROKER_URL") -> BrokerURL:
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(f"{name} has an invalid port") from None
    if parts.scheme in ("amqp", "amqps"):
        if not parts.hostname:
            raise SettingsError(f"{name} must name a host (amqp://user@host:5672/vhost)")
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        ca_file = query.pop("cacertfile", "")
        if query:
            raise SettingsError(f"{name} has unknown query parameters {sorted(query)} (amqps: cacertfile)")
        if ca_file and parts.scheme != "amqps":
            raise SettingsError(f"{name}: cacertfile needs amqps:// (TLS); amqp:// is plain text")
        return BrokerURL(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port or (5671 if parts.scheme == "amqps" else 5672),
            ca_file=ca_file,
            username=unquote(parts.username or "guest"),
            password=password or unquote(parts.password or ""),
            vhost=vhost,
        )
    if parts.scheme == "sqs":
        # sqs://[ACCESS_KEY_ID@]QUEUE.fifo?...: an optional user part is the access key id and
        # PUENTE_BROKER_PASSWORD its secret (endpoints without an IAM role, e.g. moto in the lab);
        # without it boto3's own chain (IRSA, instance profile, AWS_* variables) applies.
        queue = parts.netloc.rpartition("@")[2]
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,75}\.fifo", queue):
            raise SettingsError(f"{name} must name a FIFO queue (sqs://NAME.fifo?region=R), got {queue!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        region = query.get("region", "")
        if not region:
            raise SettingsError(f"{name} must carry ?region= for SQS")
        endpoint = query.get("endpoint_url") or None
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise SettingsError(f"{name} endpoint_url must be an http(s) URL, got {endpoint!r}")
        key_id = unquote(parts.netloc.rpartition("@")[0])
        if key_id and not password:
            raise SettingsError(f"{name} names an access key id: PUENTE_BROKER_PASSWORD must hold its secret")
        return BrokerURL(
            scheme="sqs",
            queue=queue,
            region=region,
            endpoint_url=endpoint,
            username=key_id,
            password=password if key_id else "",
        )
    raise SettingsError(f"{name} must start with amqp:// or sqs://, got {parts.scheme or raw!r}")


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    site = _require(env, "PUENTE_SITE")
    if not _SITE_RE.match(site):
        raise SettingsError(f"PUENTE_SITE must be a lower-case DNS label (e.g. onprem), got {site!r}")
    role = env.get("PUENTE_SITE_ROLE", "").strip() or "primary"
    if role not in _ROLES:
        raise SettingsError(f"PUENTE_SITE_ROLE must be one of {', '.join(_ROLES)}, got {role!r}")
    level = (env.get("PUENTE_LOG_LEVEL", "").strip() or "INFO").upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(f"PUENTE_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {level!r}")
    broker_password = env.get("PUENTE_BROKER_PASSWORD", "")
    read_url = env.get("PUENTE_DATABASE_READ_URL", "").strip()
    return Settings(
        site=site,
        site_role=role,
        database_url=parse_database_url(_require(env, "PUENTE_DATABASE_URL")),
        database_read_url=parse_database_url(read_url, "PUENTE_DATABASE_READ_URL") if read_url else "",
        database_password=env.get("PUENTE_DATABASE_PASSWORD", ""),
        broker=parse_broker_url(_require(env, "PUENTE_BROKER_URL"), broker_password),
        idempotency_ttl_seconds=_int(env, "PUENTE_IDEMPOTENCY_TTL_SECONDS", 86400, 60, 30 * 86400),
        max_body_bytes=_int(env, "PUENTE_MAX_BODY_BYTES", 65536, 1024, 10 * 1024 * 1024),
        log_level=level,
        db_pool_size=_int(env, "PUENTE_DB_POOL_SIZE", 10, 1, 200),
        forwarded_allow_ips=parse_forwarded_allow_ips(env.get("PUENTE_FORWARDED_ALLOW_IPS", "")),
        rate_limit_per_second=_int(env, "PUENTE_RATE_LIMIT_PER_SECOND", 100, 0, 1_000_000),
        rate_limit_burst=_int(env, "PUENTE_RATE_LIMIT_BURST", 200, 1, 1_000_000),
    )
