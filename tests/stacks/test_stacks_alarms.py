"""The cloud site's CloudWatch alarms (stacks/puente_cloud/alarms.py), on the stacks' recorded graphs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from puente_cloud import outputs
from puente_cloud.config import ConfigError
from stacks_helpers import DELETE, filled, run_stack

from puente.pulumikit import RecordedResource, Recording

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
KEY = "aws:kms/key:Key"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


def _alarms(rec: Recording) -> dict[str, RecordedResource]:
    return {a.name.removeprefix("alarms-"): a for a in rec.of_type(ALARM)}


def _region(r: RecordedResource, rec: Recording) -> str:
    return str(r.inputs.get("region") or rec.outputs[outputs.REGION])


def _watched(rec: Recording, metric: str) -> list[Any]:
    """The dimensions of every alarm on `metric`, sorted."""
    found = [a.inputs["dimensions"] for a in rec.of_type(ALARM) if a.inputs.get("metricName") == metric]
    return sorted(found, key=json.dumps)


def test_every_alarm_notifies_a_topic_of_its_region_when_it_fires_and_clears(any_stack: Recording) -> None:
    topics = {t.urn: t for t in any_stack.of_type(TOPIC)}
    alarms = any_stack.of_type(ALARM)
    assert len(alarms) >= 9
    for alarm in alarms:
        assert alarm.inputs["actionsEnabled"] is True
        assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"], alarm.name
        (topic_urn,) = alarm.property_dependencies["alarmActions"]
        assert alarm.property_dependencies["okActions"] == (topic_urn,)
        topic = topics[topic_urn]
        # an alarm can only notify a topic in its own region
        assert _region(topic, any_stack) == _region(alarm, any_stack), alarm.name
        assert alarm.inputs["alarmActions"] == [topic.outputs["arn"]]
        assert alarm.inputs["name"] == f"puente-{any_stack.stack}-{alarm.name}"  # what a reader sees
        assert alarm.inputs["alarmDescription"]


def test_the_topics_are_encrypted_with_their_own_keys_which_cloudwatch_may_use(any_stack: Recording) -> None:
    keys = {k.urn: k for k in any_stack.of_type(KEY)}
    stack = filled(any_stack.stack)
    endpoints = sorted(
        [("email", e) for e in stack["puente:alarms.emailEndpoints"]]
        + [("https", u) for u in stack.get("puente:alarms.httpsEndpoints", [])]
    )
    topics = any_stack.of_type(TOPIC)
    # Route 53's metrics are in us-east-1: a second topic there (the stacks' regions are in Europe)
    assert sorted(_region(t, any_stack) for t in topics) == sorted(
        [any_stack.outputs[outputs.REGION], "us-east-1"]
    )
    assert set(any_stack.outputs[outputs.ALARM_TOPIC_ARNS].values()) == {t.outputs["arn"] for t in topics}
    for topic in topics:
        (key_urn,) = topic.property_dependencies["kmsMasterKeyId"]
        key = keys[key_urn]
        assert _region(key, any_stack) == _region(topic, any_stack)
        assert key.inputs["enableKeyRotation"] is True
        statements = json.loads(key.inputs["policy"])["Statement"]
        assert {"Service": ["cloudwatch.amazonaws.com"]} in [s["Principal"] for s in statements]
        (cloudwatch,) = [s for s in statements if s["Principal"] == {"Service": ["cloudwatch.amazonaws.com"]}]
        assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
        # the account keeps its say (AWS's default key policy), or nobody could administer the key
        assert {"AWS": ["arn:aws:iam::123456789012:root"]} in [s["Principal"] for s in statements]
        subscriptions = [
            s for s in any_stack.of_type(SUBSCRIPTION) if s.property_dependencies["topic"] == (topic.urn,)
        ]
        assert sorted((s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions) == endpoints
        assert all(_region(s, any_stack) == _region(topic, any_stack) for s in subscriptions)


def test_the_dead_letter_queue_is_watched(any_stack: Recording) -> None:
    dlq_name = any_stack.outputs[outputs.DEAD_LETTER_QUEUE_URL].rsplit("/", 1)[1]
    alarms = _alarms(any_stack)
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert _watched(any_stack, metric) == [{"QueueName": dlq_name}]
    assert alarms["dlq-depth"].inputs["threshold"] == 0.0
    assert alarms["dlq-depth"].inputs["comparisonOperator"] == "GreaterThanThreshold"
    assert alarms["dlq-age"].inputs["threshold"] == 3600.0  # the default deadLetterMaxAgeSeconds


def test_each_route53_health_check_is_watched_in_us_east_1(any_stack: Recording) -> None:
    ids = any_stack.outputs[outputs.HEALTH_CHECK_IDS]
    assert _watched(any_stack, "HealthCheckStatus") == sorted(
        ({"HealthCheckId": i} for i in ids.values()), key=json.dumps
    )
    for site in ids:
        alarm = _alarms(any_stack)[f"health-check-{site}"]
        assert alarm.inputs["region"] == "us-east-1" and alarm.inputs["namespace"] == "AWS/Route53"
        assert (alarm.inputs["statistic"], alarm.inputs["comparisonOperator"], alarm.inputs["threshold"]) == (
            "Minimum",
            "LessThanThreshold",
            1.0,
        )
        assert alarm.inputs["treatMissingData"] == "breaching"


def test_the_alb_and_the_vpn_tunnels_are_watched(any_stack: Recording) -> None:
    alarms = _alarms(any_stack)
    lb = next(r for r in any_stack.of_type("aws:lb/loadBalancer:LoadBalancer") if r.name == "edge-alb")
    tg = next(r for r in any_stack.of_type("aws:lb/targetGroup:TargetGroup") if r.name == "edge-api")
    assert _watched(any_stack, "UnHealthyHostCount") == [
        {"LoadBalancer": lb.outputs["arnSuffix"], "TargetGroup": tg.outputs["arnSuffix"]}
    ]
    queries = {q["id"]: q for q in alarms["alb-5xx"].inputs["metricQueries"]}
    assert {q["metric"]["metricName"] for q in queries.values() if "metric" in q} == {
        "HTTPCode_ELB_5XX_Count",
        "HTTPCode_Target_5XX_Count",
        "RequestCount",
    }
    assert all(
        q["metric"]["dimensions"] == {"LoadBalancer": lb.outputs["arnSuffix"]}
        for q in queries.values()
        if "metric" in q
    )
    assert [q["id"] for q in queries.values() if q["returnData"]] == ["share"]
    assert queries["share"]["expression"] == "100 * (FILL(elb, 0) + FILL(api, 0)) / requests"
    assert alarms["alb-5xx"].inputs["threshold"] == 5.0
    tunnels = any_stack.outputs[outputs.VPN_TUNNEL_ADDRESSES]
    assert _watched(any_stack, "TunnelState") == sorted(
        ({"TunnelIpAddress": t} for t in tunnels), key=json.dumps
    )


def test_the_database_is_watched(any_stack: Recording) -> None:
    alarms = _alarms(any_stack)
    if any_stack.outputs[outputs.DB_MODE] == "rds":
        db = any_stack.one("aws:rds/instance:Instance")
        for metric in ("CPUUtilization", "FreeStorageSpace", "DatabaseConnections"):
            assert _watched(any_stack, metric) == [{"DBInstanceIdentifier": db.outputs["identifier"]}], metric
        assert alarms["rds-free-storage"].inputs["threshold"] == 20 * 1024**3 // 10  # 10 % of 20 GiB
        assert not _watched(any_stack, "StatusCheckFailed_System")
        return
    members = [r for r in any_stack.of_type("aws:ec2/instance:Instance") if r.name.startswith("database-")]
    assert len(members) == len(any_stack.outputs[outputs.CLOUD_NODES]) >= 1
    for check in ("StatusCheckFailed_System", "StatusCheckFailed_Instance"):
        assert _watched(any_stack, check) == sorted(({"InstanceId": m.id} for m in members), key=json.dumps)
    nlb = next(r for r in any_stack.of_type("aws:lb/loadBalancer:LoadBalancer") if r.name == "leader-nlb")
    write = next(r for r in any_stack.of_type("aws:lb/targetGroup:TargetGroup") if r.name == "leader-write")
    assert write.inputs["healthCheck"]["path"] == "/primary"
    assert _watched(any_stack, "HealthyHostCount") == [
        {"LoadBalancer": nlb.outputs["arnSuffix"], "TargetGroup": write.outputs["arnSuffix"]}
    ]
    assert not _watched(any_stack, "CPUUtilization")


def test_a_stack_in_us_east_1_needs_one_topic() -> None:
    rec = run_stack(
        "dev",
        {"aws:region": "us-east-1", "puente:network.availabilityZones": ["us-east-1a", "us-east-1b"]},
    )
    (topic,) = rec.of_type(TOPIC)
    assert "region" not in topic.inputs
    assert {a.property_dependencies["alarmActions"] for a in rec.of_type(ALARM)} == {(topic.urn,)}
    assert rec.outputs[outputs.ALARM_TOPIC_ARNS] == {
        "stack": topic.outputs["arn"],
        "healthChecks": topic.outputs["arn"],
    }


def _refused(overrides: dict[str, Any]) -> str:
    recording = Recording(project="puente", stack="dev")
    with pytest.raises(ConfigError) as info:
        run_stack("dev", overrides, recording=recording)
    assert recording.resources == []
    return str(info.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"puente:alarms.emailEndpoints": ["oncall@puente.example.com"]},
            "puente:alarms.emailEndpoints[0]: puente.example.com is in example.com, a documentation domain",
        ),
        (
            {"puente:alarms.httpsEndpoints": ["https://hooks.example.net/sns"]},
            "puente:alarms.httpsEndpoints[0]: hooks.example.net is in example.net",
        ),
        (
            {"puente:alarms.emailEndpoints": ["CHANGE-ME"]},
            "puente:alarms.emailEndpoints[0]: the value is still the placeholder 'CHANGE-ME'",
        ),
        (
            {"puente:alarms.emailEndpoints": ["oncall"]},
            "puente:alarms.emailEndpoints: 'oncall' is not an e-mail address",
        ),
        (
            {"puente:alarms.httpsEndpoints": ["http://alerts.corp-domain.net/sns"]},
            "puente:alarms.httpsEndpoints: 'http://alerts.corp-domain.net/sns' is not an https:// URL",
        ),
        (
            {"puente:alarms.httpsEndpoints": ["https://user:pw@alerts.corp-domain.net/sns"]},
            "is not an https:// URL with a host and no credentials",
        ),
        (
            {"puente:alarms.emailEndpoints": ["a@corp-domain.net", "a@corp-domain.net"]},
            "puente:alarms.emailEndpoints: lists an endpoint twice",
        ),
        (
            {"puente:alarms.emailEndpoints": []},
            "puente:alarms.emailEndpoints: an alarm nobody receives is not an alarm",
        ),
        ({"puente:alarms": DELETE}, "puente:alarms: is required"),
        ({"puente:alarms.alb5xxPercent": 0}, "puente:alarms.alb5xxPercent: must be between 1 and 100"),
        (
            {"puente:alarms.smsEndpoints": ["+3312345678"]},
            "puente:alarms.smsEndpoints: is not a known setting",
        ),
    ],
)
def test_bad_alarm_settings_are_refused(overrides: dict[str, Any], expected: str) -> None:
    assert expected in _refused(overrides)
