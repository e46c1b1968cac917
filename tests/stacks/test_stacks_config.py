"""Bad stack configs are refused with a message naming the key — before any resource is declared."""

from __future__ import annotations

from typing import Any

import pytest
from puente_cloud import failover
from puente_cloud.config import ConfigError
from stacks_helpers import DELETE, TEST_SECRETS, filled, run_stack

from puente.pulumikit import Recording


def _error(
    stack: str, overrides: dict[str, Any], secrets: dict[str, str] | None = None, fill: bool = True
) -> ConfigError:
    recording = Recording(project="puente", stack=stack)
    with pytest.raises(ConfigError) as info:
        run_stack(stack, overrides, secrets=secrets, recording=recording, fill=fill)
    assert recording.resources == [], "a config error must come before any resource"
    return info.value


def _refused(stack: str, overrides: dict[str, Any], secrets: dict[str, str] | None = None) -> str:
    return str(_error(stack, overrides, secrets))


@pytest.mark.parametrize("stack", ["dev", "prod", "prod-euc1"])
def test_the_shipped_examples_are_refused_listing_every_placeholder(stack: str) -> None:
    """Pulumi.<stack>.yaml is documentation-valued: validating it lists each placeholder once, all at
    once, and nothing else; the filled-in copy the other tests run replaces exactly those."""
    error = _error(stack, {}, fill=False)
    keys = set()
    for key, value in filled(stack).items():
        keys |= {f"{key}[{i}]" for i in range(len(value))} if isinstance(value, list) else {key}
    assert {p.key for p in error.placeholders} == keys
    assert sorted(error.problems) == sorted(p.problem for p in error.placeholders)
    assert len(error.problems) == len(set(error.problems))
    message = str(error)
    assert (
        "puente:edge.hostedZoneId: Z0123456789" in message
        and "placeholder Route 53 hosted zone id" in message
    )
    assert "puente:network.vpn.customerGatewayIp: 198.51.100." in message
    assert "is a documentation address (RFC 5737 TEST-NET-2); put the real address" in message
    assert "puente:cluster.publicAccessCidrs[0]: 203.0.113.0/24 is a documentation network" in message
    assert "puente.example.com is in example.com, a documentation domain" in message
    assert "puente:database.patroni.sshPublicKey: this ssh-ed25519 public key is an example" in message
    assert "puente:database.caCertificate: the value is still the placeholder 'CHANGE-ME'" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"puente:database.allowedCidrs": ["2001:db8:1::/48"]},
            "puente:database.allowedCidrs[0]: 2001:db8:1::/48 is a documentation network (RFC 3849)",
        ),
        (
            {"puente:network.vpn.customerGatewayIp": "192.0.2.44"},
            "customerGatewayIp: 192.0.2.44 is a documentation address (RFC 5737 TEST-NET-1)",
        ),
        ({"puente:edge.zoneName": "puente.example.org"}, "puente.example.org is in example.org"),
        ({"puente:edge.zoneName": "api.corp.test"}, "api.corp.test is in corp.test"),
        ({"puente:edge.zoneName": "api.corp.invalid"}, "api.corp.invalid is in corp.invalid"),
        ({"puente:edge.zoneName": "api.puente.example"}, "api.puente.example is in puente.example"),
        ({"puente:edge.hostedZoneId": "ZEXAMPLE12345"}, "ZEXAMPLE12345 is a placeholder Route 53 hosted"),
        ({"puente:edge.hostedZoneId": "Z0000000ABCDE"}, "Z0000000ABCDE is a placeholder Route 53 hosted"),
        (
            {"puente:tags.Owner": "CHANGE-ME"},
            "puente:tags.Owner: the value is still the placeholder 'CHANGE-ME'",
        ),
        ({"puente:tags.CostCenter": "<cost center>"}, "puente:tags.CostCenter: the value is still the place"),
    ],
)
def test_placeholders_are_refused(overrides: dict[str, Any], expected: str) -> None:
    assert expected in _refused("dev", overrides)


@pytest.mark.parametrize(
    ("digest", "expected"),
    [
        ("sha256:" + "0" * 64, "is a placeholder image digest, not one a registry computed"),
        ("sha256:" + "ab" * 32, "is a placeholder image digest"),
        ("sha256:" + "deadbeef" * 8, "is a placeholder image digest"),
        ("sha256:1234", "puente:api.imageDigest: 'sha256:1234' does not match"),
        ("0.1.0", "puente:api.imageDigest: '0.1.0' does not match"),
    ],
)
def test_the_image_digest_is_a_real_one(digest: str, expected: str) -> None:
    assert expected in _refused("dev", {"puente:api.imageDigest": digest})


def test_an_image_tag_is_refused_pointing_at_the_digest() -> None:
    message = _refused("dev", {"puente:api.imageTag": "0.1.0"})
    assert (
        "puente:api.imageTag: is no longer read: the image is deployed by digest; set imageDigest" in message
    )
    assert "not a known setting" not in message


def _certificate(ca: bool, common_name: str = "Puente tests") -> str:
    """A self-signed certificate (PEM), a CA or a server's own; its key is thrown away."""
    import datetime

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _private_key() -> str:
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _corrupted(pem: str) -> str:
    lines = pem.splitlines()
    lines[2] = "A" * len(lines[2])  # valid base64, broken DER
    return "\n".join(lines) + "\n"


CA_KEY = "puente:database.caCertificate"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (DELETE, f"{CA_KEY}: is required"),
        ("", f"{CA_KEY}: must be a non-empty string"),
        ("CHANGE-ME", f"{CA_KEY}: the value is still the placeholder 'CHANGE-ME'"),
        ("<the CA of your PKI>", f"{CA_KEY}: the value is still the placeholder"),
        ("/etc/ssl/puente-ca.crt", f"{CA_KEY}: is not PEM: paste the CA certificate(s)"),
        (lambda: _corrupted(_certificate(ca=True)), f"{CA_KEY}: does not parse as X.509 certificate(s)"),
        (lambda: _certificate(ca=False), f"{CA_KEY}: 1 of its certificates is not a CA"),
        (
            lambda: _certificate(ca=True) + _private_key(),
            f"{CA_KEY}: holds PRIVATE KEY PEM blocks: only the CA's certificate(s) belong here (never a key)",
        ),
        (
            lambda: "subject=CN=Puente\n" + _certificate(ca=True),
            f"{CA_KEY}: holds text outside its PEM blocks",
        ),
    ],
)
def test_the_database_ca_must_be_pem_ca_certificates(value: Any, expected: str) -> None:
    """database.caCertificate: what the API verifies the database's certificates with (verify-full). Not a
    secret, but refused unless it parses as PEM CA certificate(s), before any resource is declared."""
    message = _refused("dev", {CA_KEY: value() if callable(value) else value})
    assert expected in message, message
    assert len([line for line in message.splitlines() if CA_KEY in line]) == 1


def test_a_bundle_of_several_cas_is_accepted() -> None:
    """Amazon's RDS bundle, or a PKI's root and intermediate: several CA certificates in one value."""
    bundle = _certificate(ca=True, common_name="root") + _certificate(ca=True, common_name="intermediate")
    recording = run_stack("dev", {CA_KEY: bundle})
    (ca,) = [
        r
        for r in recording.of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"] == "puente-api-database-ca"
    ]
    assert ca.inputs["data"] == {"database-ca.crt": bundle}


def test_a_placeholder_password_is_refused_without_echoing_it() -> None:
    message = _refused("dev", {}, secrets={"puente:databasePassword": "CHANGE-ME-0123456789"})
    assert "puente:databasePassword: is still a placeholder such as CHANGE-ME" in message
    assert "CHANGE-ME-0123456789" not in message


@pytest.mark.parametrize(
    ("stack", "overrides", "expected"),
    [
        # invalid CIDR
        (
            "dev",
            {"puente:network.vpcCidr": "10.60.0.0/33"},
            "puente:network.vpcCidr: '10.60.0.0/33' is not a valid CIDR",
        ),
        (
            "dev",
            {"puente:network.vpcCidr": "10.60.0.1/16"},
            "puente:network.vpcCidr: '10.60.0.1/16' is not a valid CIDR",
        ),
        (
            "dev",
            {"puente:network.onpremCidrs": ["10.60.0.0/24"]},
            "puente:network.onpremCidrs: 10.60.0.0/24 overlaps vpcCidr",
        ),
        # public database
        (
            "dev",
            {"puente:database.publiclyAccessible": True},
            "puente:database.publiclyAccessible: a public database is refused",
        ),
        # open security group
        (
            "dev",
            {"puente:database.allowedCidrs": ["0.0.0.0/0"]},
            "puente:database.allowedCidrs: 0.0.0.0/0 opens it to the whole internet",
        ),
        (
            "dev",
            {"puente:cluster.publicAccessCidrs": ["0.0.0.0/0"]},
            "puente:cluster.publicAccessCidrs: 0.0.0.0/0 opens it to the whole internet",
        ),
        # missing tags
        ("dev", {"puente:tags.CostCenter": DELETE}, "puente:tags.CostCenter: required tag is missing"),
        ("dev", {"puente:tags": DELETE}, "puente:tags: is required"),
        ("dev", {"puente:tags.Environment": "qa"}, "puente:tags.Environment: is set by the program"),
        # bad instance counts
        (
            "dev",
            {"puente:cluster.nodeMin": 4},
            "puente:cluster.nodeDesired: needs nodeMin <= nodeDesired <= nodeMax",
        ),
        (
            "dev",
            {"puente:cluster.nodeMax": "three"},
            "puente:cluster.nodeMax: must be an integer, got 'three'",
        ),
        ("dev", {"puente:api.replicasMax": 0}, "puente:api.replicasMax: must be between 1 and 100, got 0"),
        ("prod", {"puente:cluster.nodeMin": 1}, "puente:cluster.nodeMin: must be between 2 and 100, got 1"),
        # production resilience
        ("prod", {"puente:database.multiAz": False}, "puente:database.multiAz: prod requires Multi-AZ"),
        (
            "prod",
            {"puente:database.backupRetentionDays": 3},
            "puente:database.backupRetentionDays: prod requires at least 7 days",
        ),
        (
            "prod",
            {"puente:network.availabilityZones": ["eu-west-1a", "eu-west-1b"]},
            "puente:network.availabilityZones: needs at least 3 distinct zones",
        ),
        ("prod", {"puente:network.natGateways": "single"}, "puente:network.natGateways: prod needs perAz"),
        # everything else a user can get wrong
        (
            "dev",
            {"puente:network.availabilityZones": ["us-east-1a", "eu-west-1b"]},
            "puente:network.availabilityZones: 'us-east-1a' is not a zone of region eu-west-1",
        ),
        (
            "dev",
            {"puente:network.vpn.customerGatewayIp": "10.0.0.1"},
            "puente:network.vpn.customerGatewayIp: 10.0.0.1 is not a public IPv4 address",
        ),
        (
            "dev",
            {"puente:dns.onpremGatewayAddress": "gateway"},
            "puente:dns.onpremGatewayAddress: 'gateway' is not an IPv4",
        ),
        (
            "dev",
            {"puente:edge.zoneName": "Not A Domain"},
            "puente:edge.zoneName: 'Not A Domain' does not match",
        ),
        (
            "dev",
            {"puente:cluster.kubernetesVersion": "1.19"},
            "puente:cluster.kubernetesVersion: '1.19' does not match",
        ),
        ("dev", {"puente:database.mode": "aurora"}, "puente:database.mode: must be one of rds, patroni"),
        ("dev", {"puente:database.patroni": DELETE}, "puente:database.patroni: is required"),
        (
            "prod-euc1",
            {"puente:database.patroni.packageMirrorCidrs": ["0.0.0.0/0"]},
            "puente:database.patroni.packageMirrorCidrs: 0.0.0.0/0 opens it to the whole internet",
        ),
        (
            "prod-euc1",
            {"puente:database.patroni.sshPublicKey": "hunter2"},
            "puente:database.patroni.sshPublicKey: 'hunter2' does not match",
        ),
        (
            "dev",
            {"puente:queue.deadLetterRetentionSeconds": 60},
            "puente:queue.deadLetterRetentionSeconds: must be >= messageRetentionSeconds",
        ),
        ("dev", {"puente:database.multiAZ": True}, "puente:database.multiAZ: is not a known setting (typo?)"),
        ("dev", {"puente:environment": "qa"}, "puente:environment: must be one of dev, staging, prod"),
        (
            "dev",
            {"puente:netwrok": {"vpcCidr": "10.0.0.0/16"}},
            "puente:netwrok: is not a known setting (typo?)",
        ),
        ("dev", {"aws:region": DELETE}, "aws:region: is required"),
        # Route 53 runs health checkers in 8 regions only
        (
            "prod",
            {"puente:dns.healthCheckRegions": ["eu-central-1", "eu-west-1", "us-east-1"]},
            "puente:dns.healthCheckRegions: Route 53 has no health checkers in eu-central-1",
        ),
    ],
)
def test_bad_config_is_refused_naming_the_key(stack: str, overrides: dict[str, Any], expected: str) -> None:
    assert expected in _refused(stack, overrides)


@pytest.mark.parametrize("stack", ["dev", "prod", "prod-euc1"])
def test_rds_is_refused_where_the_onprem_site_is_the_primary(stack: str) -> None:
    message = _refused(stack, {"puente:database.mode": "rds", "puente:database.patroni": DELETE})
    assert "puente:database.mode: rds is refused in a hybrid stack" in message
    assert "nothing replicates the on-prem database into it" in message
    assert "would serve an empty database. Use mode: patroni" in message


def test_every_problem_is_reported_at_once() -> None:
    message = _refused(
        "dev",
        {
            "puente:network.vpcCidr": "nonsense",
            "puente:database.publiclyAccessible": True,
            "puente:tags.Owner": DELETE,
        },
    )
    assert "puente:network.vpcCidr" in message
    assert "puente:database.publiclyAccessible" in message
    assert "puente:tags.Owner" in message


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        (
            {},
            "puente:databasePassword: is required (set it with `pulumi config set --secret databasePass",
        ),
        ({"puente:databasePassword": "short"}, "puente:databasePassword: needs 16-128 characters"),
        ({"puente:databasePassword": "has a space in it, too long"}, 'without / @ " or space'),
    ],
)
def test_database_password_is_a_validated_secret(secrets: dict[str, str], expected: str) -> None:
    assert expected in _refused("dev", {}, secrets=secrets)


def test_a_password_in_plain_config_is_refused() -> None:
    overrides = {"puente:databasePassword": TEST_SECRETS["puente:databasePassword"]}
    assert "puente:databasePassword: must be stored as a secret" in _refused("dev", overrides, secrets={})


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["health_check"].update(timeout_seconds=0.5),
            "health_check.timeout_seconds: must be an integer",
        ),
        (lambda d: d["health_check"].update(interval_seconds=15), "Route 53 accepts 10 or 30"),
        (lambda d: d["health_check"].update(protocol="tcp"), "health_check.protocol: must be http or https"),
        (lambda d: d["health_check"].update(path="readyz"), "health_check.path: must start with /"),
        (lambda d: d["record"].update(weight=1), "record.weight: unknown field"),
        (lambda d: d.pop("secondary"), "secondary: section is required"),
        (lambda d: d.update(primary={"site": "cloud", "role": "edge"}), "PRIMARY=onprem gateway"),
    ],
)
def test_failover_policy_file_is_validated(mutate: Any, expected: str) -> None:
    import yaml

    data = yaml.safe_load(failover.POLICY_FILE.read_text())
    mutate(data)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        failover.parse(data)


def test_the_committed_failover_policy_is_valid() -> None:
    policy = failover.load()
    assert (policy.path, policy.protocol, policy.port) == ("/readyz?scope=read", "https", 443)
    assert isinstance(policy.timeout_seconds, int)
    assert policy.primary == ("onprem", "gateway") and policy.secondary == ("cloud", "edge")
