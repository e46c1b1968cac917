"""The real stacks/ program under the kit: the resource graph each environment declares."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
import yaml
from puente_cloud import outputs
from puente_cloud.failover import load as load_failover
from puente_test_support import load_module
from stacks_helpers import DELETE, REPO, cloud_config_errors, filled, run_stack, runtime_data

from puente import pulumikit, templating
from puente.pulumikit import Recording

COMPONENT_TOKEN = re.compile(
    r"^puente:(network|edge|compute|data|queue|dns|monitoring|backup):[A-Z][A-Za-z]+$"
)
STACK_TYPE = "pulumi:pulumi:Stack"


def _components(rec: Recording) -> list[pulumikit.RecordedResource]:
    return [r for r in rec.resources if not r.custom and r.type != STACK_TYPE]


def _named(rec: Recording, type_: str, name: str) -> pulumikit.RecordedResource:
    (found,) = [r for r in rec.of_type(type_) if r.name == name]
    return found


def test_nothing_is_declared_at_import_time() -> None:
    import importlib
    import sys

    names = [m for m in sys.modules if m == "puente_cloud" or m.startswith("puente_cloud.")]
    saved = {m: sys.modules.pop(m) for m in names}
    try:
        recording = pulumikit.run(
            lambda: [
                importlib.import_module(f"puente_cloud.{m}")
                for m in (
                    "program",
                    "network",
                    "edge",
                    "compute",
                    "api_service",
                    "data",
                    "queue",
                    "dns",
                    "alarms",
                    "backup",
                    "config",
                    "failover",
                    "security",
                    "base",
                    "outputs",
                )
            ],
            project="puente",
            stack="dev",
            config={"aws:region": "eu-west-1"},
        )
    finally:
        sys.modules.update(saved)
    assert recording.resources == [] and recording.invokes == []


def test_one_component_per_concern(any_stack: Recording) -> None:
    tokens = sorted(r.type for r in _components(any_stack))
    # Patroni mode adds the leader endpoint (the NLB in front of the members of both sites).
    patroni = (
        ["puente:data:LeaderEndpoint", "puente:backup:BackupRepository"]
        if any_stack.outputs[outputs.DB_MODE] == "patroni"
        else []
    )
    assert tokens == sorted(
        [
            "puente:network:Network",
            "puente:edge:Edge",
            "puente:compute:Cluster",
            "puente:compute:ApiService",
            "puente:data:Database",
            "puente:queue:Queue",
            "puente:dns:FailoverDns",
            "puente:monitoring:Alarms",
            *patroni,
        ]
    )
    assert all(COMPONENT_TOKEN.match(t) for t in tokens)


def test_every_resource_lives_under_a_component_and_is_named_after_it(any_stack: Recording) -> None:
    components = {r.urn: r for r in _components(any_stack)}
    for res in any_stack.custom():
        if res.type.startswith("pulumi:providers:"):
            continue
        owner = any_stack.by_urn(res.parent)
        while owner.urn not in components:  # grandchildren (e.g. a listener under its load balancer)
            owner = any_stack.by_urn(owner.parent)
        assert res.name.startswith(owner.name + "-"), f"{res.urn} is not named after {owner.urn}"


def test_components_register_their_real_outputs(any_stack: Recording) -> None:
    for comp in _components(any_stack):
        registered = any_stack.component_outputs.get(comp.urn)
        assert registered, f"{comp.urn} registered no outputs"
        assert "None" not in json.dumps(registered) and "null" not in json.dumps(registered), comp.urn


def test_stack_exports_every_key_the_ansible_side_reads(any_stack: Recording) -> None:
    patroni = any_stack.outputs[outputs.DB_MODE] == "patroni"
    # the backup repository (pgBackRest) is Patroni mode's; RDS keeps its own backups
    assert set(any_stack.outputs) == set(outputs.ALL) - (set() if patroni else set(outputs.BACKUP))
    secrets = {outputs.KUBECONFIG, outputs.VPN_PRESHARED_KEYS}
    secrets |= {outputs.BACKUP_SECRET_ACCESS_KEY} if patroni else set()
    assert any_stack.secret_outputs == secrets
    assert any_stack.outputs[outputs.ALB_DNS_NAME].endswith(".elb.amazonaws.com")
    assert len(any_stack.outputs[outputs.VPN_TUNNEL_ADDRESSES]) == 2
    assert any_stack.outputs[outputs.QUEUE_URL].endswith(".fifo")
    assert any_stack.outputs[outputs.DB_ENDPOINT] == (
        f"{any_stack.outputs[outputs.DB_ADDRESS]}:{any_stack.outputs[outputs.DB_PORT]}"
    )
    kubeconfig = json.loads(any_stack.outputs[outputs.KUBECONFIG])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "aws"  # no static token in the state


def test_inventory_plugin_reads_keys_the_program_exports() -> None:

    from stacks_helpers import REPO

    plugin = load_module(REPO / "plugins/inventory/pulumi_stack.py")
    assert set(plugin.REQUIRED_OUTPUTS) <= set(outputs.ALL)
    assert plugin.CLOUD_NODES == outputs.CLOUD_NODES


@pytest.mark.parametrize(("stack", "zones", "nats"), [("dev", 2, 1), ("prod", 3, 3), ("geo", 3, 3)])
def test_network_spans_the_configured_zones(
    stack: str, zones: int, nats: int, request: pytest.FixtureRequest
) -> None:
    rec: Recording = request.getfixturevalue(stack)
    subnets = rec.of_type("aws:ec2/subnet:Subnet")
    assert len({s.inputs["availabilityZone"] for s in subnets}) == zones
    assert len(rec.of_type("aws:ec2/natGateway:NatGateway")) == nats
    vpc = ipaddress.ip_network(rec.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"])
    blocks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(b.subnet_of(vpc) for b in blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    assert all(s.inputs.get("mapPublicIpOnLaunch") is not True for s in subnets)


def test_vpn_routes_the_onprem_networks(dev: Recording) -> None:
    vpn = dev.one("aws:ec2/vpnConnection:VpnConnection")
    assert vpn.inputs["staticRoutesOnly"] is True
    routes = [
        r.inputs["destinationCidrBlock"] for r in dev.of_type("aws:ec2/vpnConnectionRoute:VpnConnectionRoute")
    ]
    assert routes == ["10.89.0.0/16"]  # the lab's on-prem site, from Pulumi.dev.yaml
    gateway = filled("dev")["puente:network.vpn.customerGatewayIp"]
    assert dev.one("aws:ec2/customerGateway:CustomerGateway").inputs["ipAddress"] == gateway
    assert len(dev.of_type("aws:ec2/vpnGatewayRoutePropagation:VpnGatewayRoutePropagation")) == 2


def test_the_only_open_rules_are_the_public_listener_and_its_redirect(any_stack: Recording) -> None:
    open_rules = [
        r
        for r in any_stack.resources
        if "0.0.0.0/0" in json.dumps(r.inputs)
        and r.type.startswith(("aws:vpc/securityGroup", "aws:ec2/securityGroup"))
    ]
    assert sorted((r.name, r.inputs["fromPort"]) for r in open_rules) == [
        ("edge-alb-in-443", 443.0),
        ("edge-alb-in-80", 80.0),
    ]
    lb = _named(any_stack, "aws:lb/loadBalancer:LoadBalancer", "edge-alb")
    assert lb.inputs["internal"] is False and lb.inputs["dropInvalidHeaderFields"] is True
    assert lb.inputs["accessLogs"]["enabled"] is True
    listeners = {
        r.inputs["port"]: r.inputs
        for r in any_stack.of_type("aws:lb/listener:Listener")
        if r.name.startswith("edge-")
    }
    assert listeners[443.0]["protocol"] == "HTTPS" and listeners[443.0]["sslPolicy"].startswith(
        "ELBSecurityPolicy-TLS13"
    )
    assert listeners[443.0]["certificateArn"]
    assert listeners[80.0]["defaultActions"] == [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
    ]


def test_edge_has_waf_rate_rule_and_api_gateway_via_vpc_link(dev: Recording) -> None:
    acl = dev.one("aws:wafv2/webAcl:WebAcl")
    assert acl.inputs["rules"][0]["statement"]["rateBasedStatement"] == {
        "limit": 2000.0,
        "aggregateKeyType": "IP",
    }
    assert (
        dev.one("aws:wafv2/webAclAssociation:WebAclAssociation")
        .inputs["resourceArn"]
        .startswith("arn:aws:lb:eu-west-1:123456789012:edge-alb")
    )
    integration = dev.one("aws:apigatewayv2/integration:Integration")
    assert integration.inputs["connectionType"] == "VPC_LINK"
    https = next(r for r in dev.of_type("aws:lb/listener:Listener") if r.inputs["port"] == 443.0)
    assert https.urn in integration.property_dependencies["integrationUri"]
    assert dev.one("aws:acm/certificate:Certificate").inputs["validationMethod"] == "DNS"


def test_access_log_bucket_is_private_encrypted_and_writable_only_by_elb(dev: Recording) -> None:
    sse = _named(
        dev,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "edge-access-logs",
    )
    # ALB access logs accept only S3-managed keys.
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    block = _named(dev, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "edge-access-logs").inputs
    assert all(
        block[k] is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    policy = _named(dev, "aws:s3/bucketPolicy:BucketPolicy", "edge-access-logs").inputs["policy"]
    statements = json.loads(policy)["Statement"]
    write, deny = statements
    assert write["Principal"] == {
        "AWS": "arn:aws:iam::156460612806:root",
        "Service": "logdelivery.elasticloadbalancing.amazonaws.com",
    }
    assert write["Resource"].endswith("/alb/AWSLogs/*") and write["Action"] == "s3:PutObject"
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert _named(dev, "aws:lb/loadBalancer:LoadBalancer", "edge-alb").inputs["accessLogs"]["prefix"] == "alb"


def test_database_rds_only_in_a_cloud_only_stack(cloud_only: Recording) -> None:
    db = cloud_only.one("aws:rds/instance:Instance")
    assert db.inputs["storageEncrypted"] is True and db.inputs["multiAz"] is True
    assert db.inputs["publiclyAccessible"] is False
    assert db.wire_inputs["password"]["value"] == "correct-horse-battery-staple-42"  # sent as a secret
    sg = next(
        r for r in cloud_only.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "database-postgres"
    )
    assert sg.urn in db.property_dependencies["vpcSecurityGroupIds"]
    assert (db.inputs["deletionProtection"], db.inputs["skipFinalSnapshot"]) == (False, True)
    assert cloud_only.outputs[outputs.CLOUD_NODES] == {}


def test_hybrid_stacks_run_the_cross_site_patroni_cluster(dev: Recording, prod: Recording) -> None:
    for rec, members in ((dev, 1), (prod, 2)):
        assert rec.of_type("aws:rds/instance:Instance") == []
        assert rec.outputs[outputs.DB_MODE] == "patroni"
        assert (
            len(rec.of_type("aws:ec2/instance:Instance")) == len(rec.outputs[outputs.CLOUD_NODES]) == members
        )
    prod_members = prod.of_type("aws:ec2/instance:Instance")
    assert all(m.inputs["disableApiTermination"] is True for m in prod_members)
    snapshots = prod.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").inputs["policyDetails"]
    assert snapshots["schedules"][0]["retainRule"] == {"interval": 14.0, "intervalUnit": "DAYS"}


def test_names_aws_sees_are_unique_per_stack(dev: Recording, prod: Recording) -> None:
    """Two stacks in one account and region must not fight over the names AWS makes us choose."""

    def chosen(rec: Recording) -> set[str]:
        names = set()
        for res in rec.custom():
            for key in ("name", "finalSnapshotIdentifier"):
                value = res.inputs.get(key)
                # Kubernetes names live in the stack's own cluster, Route 53 records are the failover pair
                # itself, a stage name is scoped to its API.
                scoped = ("kubernetes:", "aws:route53/", "aws:apigatewayv2/stage:")
                if isinstance(value, str) and not res.type.startswith(scoped):
                    names.add(f"{res.type}:{value}")
        return names

    assert chosen(dev) and not chosen(dev) & chosen(prod)
    assert dev.one("aws:eks/cluster:Cluster").inputs["name"] == "puente-dev-cluster-eks"


def test_cross_site_option_declares_patroni_members_instead_of_rds(geo: Recording) -> None:
    assert geo.of_type("aws:rds/instance:Instance") == []
    members = geo.of_type("aws:ec2/instance:Instance")
    # The mock runtime records resources as their registrations complete: no fixed order between siblings.
    assert sorted(m.name for m in members) == ["database-cloud-db1", "database-cloud-db2"]
    nodes = geo.outputs[outputs.CLOUD_NODES]
    assert set(nodes) == {"cloud-db1", "cloud-db2"}
    assert len({n["address"] for n in nodes.values()}) == 2
    # the lab's proven shape: the first cloud member is the site's etcd vote, the others are nosync
    assert nodes["cloud-db1"]["groups"] == ["postgresql", "etcd"] and nodes["cloud-db1"]["vars"] == {}
    assert nodes["cloud-db2"]["groups"] == ["postgresql"]
    assert nodes["cloud-db2"]["vars"] == {"postgresql_patroni_tags": {"nosync": True}}
    # deletionProtection and backupRetentionDays, as RDS mode honours them (prod-euc1: true, 14 days)
    snapshots = geo.one("aws:dlm/lifecyclePolicy:LifecyclePolicy").inputs
    details = snapshots["policyDetails"]
    assert details["resourceTypes"] == ["VOLUME"]
    assert details["schedules"][0]["retainRule"] == {"interval": 14.0, "intervalUnit": "DAYS"}
    for member in members:
        assert member.inputs["disableApiTermination"] is True
        assert member.inputs["volumeTags"]["PuenteBackup"] == details["targetTags"]["PuenteBackup"]
    for member in members:
        assert member.inputs["rootBlockDevice"]["encrypted"] is True
        assert member.inputs["metadataOptions"]["httpTokens"] == "required"
        user_data = member.inputs["userData"]
        assert user_data.startswith("#cloud-config\n")
        assert yaml.safe_load(user_data)["users"][0]["name"] == "puente"
        assert cloud_config_errors(user_data) == []
    assert any(
        i.token == "aws:ec2/getAmi:getAmi" and i.args["owners"] == ["136693071363"] for i in geo.invokes
    )
    ports = {
        (r.inputs["fromPort"], r.inputs.get("cidrIpv4"))
        for r in geo.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("database-")
    }
    assert (22.0, "10.89.0.0/16") in ports and (22.0, "10.62.0.0/16") not in ports
    assert (2379.0, "10.89.0.0/16") in ports and (8008.0, "10.89.0.0/16") in ports
    egress = {
        (r.inputs["fromPort"], r.inputs.get("cidrIpv4") or r.inputs["prefixListId"])
        for r in geo.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.name.startswith("database-")
    }
    assert {(80.0, "10.89.1.0/24"), (443.0, "10.89.1.0/24"), (5432.0, "10.89.0.0/16")} <= egress
    assert not any(cidr == "0.0.0.0/0" for _, cidr in egress)


def test_queue_is_fifo_encrypted_with_a_dead_letter_queue(dev: Recording) -> None:
    queues = {q.inputs["name"]: q for q in dev.of_type("aws:sqs/queue:Queue")}
    main, dlq = queues["puente-dev-events.fifo"], queues["puente-dev-events-dlq.fifo"]
    for q in (main, dlq):
        assert q.inputs["fifoQueue"] is True and q.inputs["kmsMasterKeyId"].startswith("arn:aws:kms:")
    assert json.loads(main.inputs["redrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:eu-west-1:123456789012:puente-dev-events-dlq.fifo",
        "maxReceiveCount": 5,
    }
    allow = dev.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy")
    assert json.loads(allow.inputs["redriveAllowPolicy"])["sourceQueueArns"] == [
        "arn:aws:sqs:eu-west-1:123456789012:puente-dev-events.fifo"
    ]


@pytest.mark.parametrize("stack", ["dev", "prod", "geo"])
def test_failover_dns_follows_the_policy_file(stack: str, request: pytest.FixtureRequest) -> None:
    any_stack: Recording = request.getfixturevalue(stack)
    policy = load_failover()
    checks = {h.name: h.inputs for h in any_stack.of_type("aws:route53/healthCheck:HealthCheck")}
    for check in checks.values():
        assert check["type"] == policy.route53_type and check["resourcePath"] == policy.path
        assert check["port"] == policy.port and check["requestInterval"] == policy.interval_seconds
        assert check["failureThreshold"] == policy.failure_threshold
    gateway = filled(any_stack.stack)["puente:dns.onpremGatewayAddress"]
    assert checks["failover-onprem"]["ipAddress"] == gateway
    assert checks["failover-cloud"]["fqdn"] == any_stack.outputs[outputs.ALB_DNS_NAME]
    records = {r.inputs.get("setIdentifier"): r for r in any_stack.of_type("aws:route53/record:Record")}
    primary, secondary = records["onprem"].inputs, records["cloud"].inputs
    fqdn = any_stack.outputs[outputs.FAILOVER_FQDN]
    assert fqdn.startswith(f"{policy.record_name}.")
    assert primary["name"] == secondary["name"] == fqdn
    assert primary["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert primary["records"] == [gateway] and primary["ttl"] == policy.ttl
    assert primary["healthCheckId"] == any_stack.outputs[outputs.HEALTH_CHECK_IDS]["onprem"]
    assert secondary["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    assert secondary["aliases"] == [
        {
            "name": any_stack.outputs[outputs.ALB_DNS_NAME],
            "zoneId": "Z32O12XQLNTSW2",
            "evaluateTargetHealth": True,
        }
    ]


def test_a_cloud_only_stack_has_no_failover_pair(cloud_only: Recording) -> None:
    (check,) = cloud_only.of_type("aws:route53/healthCheck:HealthCheck")
    assert check.inputs["fqdn"] == cloud_only.outputs[outputs.ALB_DNS_NAME]
    fqdn = cloud_only.outputs[outputs.FAILOVER_FQDN]
    (record,) = [r for r in cloud_only.of_type("aws:route53/record:Record") if r.inputs["name"] == fqdn]
    assert "failoverRoutingPolicies" not in record.inputs and "setIdentifier" not in record.inputs
    assert record.inputs["aliases"][0]["name"] == cloud_only.outputs[outputs.ALB_DNS_NAME]
    assert record.inputs["aliases"][0]["evaluateTargetHealth"] is True
    assert set(cloud_only.outputs[outputs.HEALTH_CHECK_IDS]) == {"cloud"}


def test_kubernetes_objects_go_through_the_explicit_provider(any_stack: Recording) -> None:
    provider = any_stack.one("pulumi:providers:kubernetes")
    k8s_objects = [r for r in any_stack.custom() if r.type.startswith("kubernetes:")]
    assert len(k8s_objects) == 10
    assert all(r.provider_urn == provider.urn for r in k8s_objects)
    cluster = any_stack.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True


def test_kubernetes_objects_are_valid_for_the_cluster_version(any_stack: Recording) -> None:
    version = any_stack.one("aws:eks/cluster:Cluster").inputs["version"]
    assert pulumikit.validate_kubernetes(any_stack, version) == 10


def test_api_deployment_is_probed_hardened_and_scaled(prod: Recording) -> None:
    deployments = {
        d.inputs["metadata"]["name"]: d.inputs for d in prod.of_type("kubernetes:apps/v1:Deployment")
    }
    api = deployments["puente-api"]["spec"]["template"]["spec"]
    (container,) = api["containers"]
    # the policy's check: ready to serve (reads even while the site's database is a standby)
    assert container["readinessProbe"]["httpGet"]["path"] == load_failover().path == "/readyz?scope=read"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    # by digest, from config (puente:api.imageDigest): every container of both Deployments, init included
    digest = filled("prod")["puente:api.imageDigest"]
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/cluster-api-mock@{digest}"
    assert container["image"] == image
    background = deployments["puente-api-background"]["spec"]["template"]["spec"]["containers"]
    assert {c["image"] for c in [*api["initContainers"], *background]} == {image}
    assert api["initContainers"][0]["args"] == ["migrate"]
    hpa = prod.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3.0, 12.0)
    # the HPA reads metrics-server: an EKS-managed add-on on the same cluster (no image named here)
    addons = {a.inputs["addonName"]: a.inputs for a in prod.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"eks-pod-identity-agent", "metrics-server", "vpc-cni", "kube-proxy", "coredns"}
    cluster_name = prod.one("aws:eks/cluster:Cluster").inputs["name"]
    assert all(a["clusterName"] == cluster_name for a in addons.values())
    assert prod.one("kubernetes:core/v1:Service").inputs["spec"]["ports"][0]["nodePort"] == 30080.0
    assert _named(prod, "aws:lb/targetGroup:TargetGroup", "edge-api").inputs["port"] == 30080.0


VERIFY_FULL = "sslmode=verify-full&sslrootcert=/etc/puente/database-ca.crt"


def test_configmap_and_secret_are_the_shared_templates_rendered(dev: Recording) -> None:
    data = runtime_data(dev)
    # the leader endpoint (internal NLB), never a fixed member: :5432 the leader, :5433 leader or sync standby
    nlb = _named(dev, "aws:lb/loadBalancer:LoadBalancer", "leader-nlb")
    host = dev.outputs[outputs.DB_ADDRESS]
    assert host.startswith("leader-nlb-") and host.endswith(".elb.amazonaws.com") and nlb.inputs["internal"]
    expected = templating.parse_env_file(
        templating.render(
            "api/runtime.env.j2",
            {
                "api_site": "cloud",
                "api_site_role": "secondary",
                "api_database_url": f"postgresql://puente@{host}:5432/puente?{VERIFY_FULL}",
                "api_database_read_url": f"postgresql://puente@{host}:5433/puente?{VERIFY_FULL}",
                "api_broker_url": "sqs://puente-dev-events.fifo?region=eu-west-1",
                "api_idempotency_ttl_seconds": 86400,
                "api_max_body_bytes": 65536,
                "api_log_level": "DEBUG",
                "api_rate_limit_per_second": 100,
                "api_rate_limit_burst": 200,
                "api_forwarded_allow_ips": "10.60.0.0/16",  # the VPC (Pulumi.dev.yaml): where the ALB is
            },
        )
    )
    assert data == expected
    secret = dev.one("kubernetes:core/v1:Secret").wire_inputs["stringData"]
    assert secret["value"] == {
        "PUENTE_DATABASE_PASSWORD": "correct-horse-battery-staple-42",
        "PUENTE_BROKER_PASSWORD": "",
    }
    assert "4dabf18193072939515e22adb298388d" in secret  # a secret on the wire, not plain text


def test_every_taggable_resource_is_tagged_by_the_helper(any_stack: Recording) -> None:
    for res in any_stack.custom():
        tags = res.inputs.get("tags")
        if tags is None:
            continue
        assert tags["Name"] == res.name, res.urn
        assert {"Owner", "CostCenter", "Project", "Environment", "ManagedBy"} <= set(tags), res.urn
        assert tags["Environment"] == ("dev" if any_stack.stack == "dev" else "prod")


def test_every_aws_input_is_an_argument_pulumi_aws_7_knows(any_stack: Recording) -> None:
    assert pulumikit.check_aws_input_shapes(any_stack) > 90


def test_invokes_are_all_answered_and_recorded(any_stack: Recording) -> None:
    tokens = {i.token for i in any_stack.invokes}
    assert "aws:iam/getPolicyDocument:getPolicyDocument" in tokens
    assert any_stack.errors == []


def test_before_the_image_is_pushed_everything_but_the_api_is_declared() -> None:
    """First deployment: no imageDigest yet (the repository does not exist before this `pulumi up`), so
    no API objects that could only wait on ImagePullBackOff; the repository and the rest are declared."""
    rec = run_stack("dev", {"puente:api.imageDigest": DELETE})
    assert [r.type for r in rec.custom() if r.type.startswith("kubernetes:")] == []
    assert not any(r.type == "puente:compute:ApiService" for r in rec.resources)
    assert rec.one("aws:ecr/repository:Repository").inputs["imageTagMutability"] == "IMMUTABLE"
    assert set(rec.outputs) == set(outputs.ALL) and rec.errors == []


def _query(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


def test_every_api_container_verifies_the_database_with_the_stacks_ca(any_stack: Recording) -> None:
    """Both URLs ask for verify-full with sslrootcert= the file every container mounts read-only from the
    CA ConfigMap (database.caCertificate): the API, its migrate init container and the background ones."""
    data = runtime_data(any_stack)
    urls = [data["PUENTE_DATABASE_URL"], data["PUENTE_DATABASE_READ_URL"] or data["PUENTE_DATABASE_URL"]]
    assert [_query(u) for u in urls] == [
        {"sslmode": "verify-full", "sslrootcert": "/etc/puente/database-ca.crt"}
    ] * 2
    (ca,) = [
        r
        for r in any_stack.of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"] == "puente-api-database-ca"
    ]
    assert ca.inputs["metadata"]["namespace"] == "puente"
    assert ca.inputs["data"] == {"database-ca.crt": filled("dev")["puente:database.caCertificate"]}
    containers = []
    for d in any_stack.of_type("kubernetes:apps/v1:Deployment"):
        pod = d.inputs["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["database-ca"]["configMap"]["name"] == "puente-api-database-ca"
        for c in [*pod["containers"], *pod.get("initContainers", [])]:
            containers.append(c["name"])
            (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/puente/database-ca.crt"]
            assert mount == {
                "name": "database-ca",
                "mountPath": "/etc/puente/database-ca.crt",
                "subPath": "database-ca.crt",
                "readOnly": True,
            }
    assert sorted(containers) == ["api", "migrate", "reaper", "relay", "worker"]


def test_the_database_urls_ask_what_the_onprem_nodes_ask(dev: Recording) -> None:
    """The TLS half of the URL is one fact on both sites: the cloud's query string is the `api` role's
    (roles/api defaults: api_database_url, api_database_ca_file), so the CA sits at the same path as on the
    on-prem nodes and in the image test."""
    from puente_cloud.api_service import DATABASE_CA_FILE

    defaults = yaml.safe_load((REPO / "roles" / "api" / "defaults" / "main.yml").read_text())
    assert defaults["api_database_ca_file"] == DATABASE_CA_FILE == "/etc/puente/database-ca.crt"
    data = runtime_data(dev)
    for key, url in (
        ("api_database_url", data["PUENTE_DATABASE_URL"]),
        ("api_database_read_url", data["PUENTE_DATABASE_READ_URL"]),
    ):
        onprem = defaults[key].split("?", 1)[1].replace("{{ api_database_ca_file }}", DATABASE_CA_FILE)
        assert url.split("?", 1)[1] == onprem
