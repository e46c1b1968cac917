"""Settings come from the environment and are validated with messages that name the variable."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest
from api_helpers import API_EXE
from puente_api import settings
from puente_api.settings import SettingsError

GOOD = {
    "PUENTE_SITE": "onprem",
    "PUENTE_SITE_ROLE": "primary",
    "PUENTE_DATABASE_URL": "postgresql://puente_api@10.89.1.31:5432/puente",
    "PUENTE_DATABASE_PASSWORD": "s3cret",
    "PUENTE_BROKER_URL": "amqp://puente@10.89.1.41:5672/puente",
    "PUENTE_BROKER_PASSWORD": "hunter2",
    "PUENTE_IDEMPOTENCY_TTL_SECONDS": "86400",
    "PUENTE_MAX_BODY_BYTES": "65536",
    "PUENTE_LOG_LEVEL": "INFO",
}


def test_good_settings_load() -> None:
    s = settings.load(GOOD)
    assert s.site == "onprem" and s.site_role == "primary"
    assert s.broker.host == "10.89.1.41" and s.broker.vhost == "puente" and s.broker.password == "hunter2"
    assert "password=s3cret" in s.conninfo and "connect_timeout=3" in s.conninfo


def test_database_url_may_list_several_hosts() -> None:
    url = "postgresql://puente_api@10.89.1.31:5432,10.89.1.32:5432/puente?target_session_attrs=read-write"
    assert settings.load({**GOOD, "PUENTE_DATABASE_URL": url}).database_url == url


def test_sqs_broker_url() -> None:
    s = settings.load({**GOOD, "PUENTE_BROKER_URL": "sqs://puente-labels.fifo?region=eu-central-1"})
    assert (s.broker.scheme, s.broker.queue, s.broker.region, s.broker.endpoint_url) == (
        "sqs",
        "puente-labels.fifo",
        "eu-central-1",
        None,
    )


def test_sqs_broker_url_with_static_key() -> None:
    url = "sqs://lab-key@puente-shipments.fifo?region=eu-west-1&endpoint_url=http://10.89.2.41:5000"
    s = settings.load({**GOOD, "PUENTE_BROKER_URL": url})
    assert (s.broker.queue, s.broker.username, s.broker.password) == (
        "puente-shipments.fifo",
        "lab-key",
        "hunter2",
    )
    assert s.broker.endpoint_url == "http://10.89.2.41:5000"
    without_key = settings.load({**GOOD, "PUENTE_BROKER_URL": "sqs://q.fifo?region=eu-west-1"})
    assert (without_key.broker.username, without_key.broker.password) == ("", "")


BAD = [
    ({"PUENTE_SITE": ""}, "PUENTE_SITE is required"),
    ({"PUENTE_SITE": "On Prem"}, "PUENTE_SITE must be"),
    ({"PUENTE_SITE_ROLE": "leader"}, "PUENTE_SITE_ROLE must be one of primary, secondary"),
    ({"PUENTE_DATABASE_URL": ""}, "PUENTE_DATABASE_URL is required"),
    ({"PUENTE_DATABASE_URL": "mysql://x@h/db"}, "PUENTE_DATABASE_URL must start with postgresql://"),
    ({"PUENTE_DATABASE_URL": "postgresql://x@h:5432/"}, "PUENTE_DATABASE_URL must name a database"),
    ({"PUENTE_DATABASE_URL": "postgresql://x@h:99999/db"}, "PUENTE_DATABASE_URL has an invalid port"),
    ({"PUENTE_BROKER_URL": "kafka://h"}, "PUENTE_BROKER_URL must start with amqp:// or sqs://"),
    ({"PUENTE_BROKER_URL": "sqs://labels?region=eu-central-1"}, "PUENTE_BROKER_URL must name a FIFO queue"),
    ({"PUENTE_BROKER_URL": "sqs://labels.fifo"}, "PUENTE_BROKER_URL must carry ?region="),
    (
        {"PUENTE_BROKER_URL": "sqs://key@labels.fifo?region=eu-west-1", "PUENTE_BROKER_PASSWORD": ""},
        "PUENTE_BROKER_PASSWORD must hold its secret",
    ),
    ({"PUENTE_IDEMPOTENCY_TTL_SECONDS": "1 day"}, "PUENTE_IDEMPOTENCY_TTL_SECONDS must be an integer"),
    ({"PUENTE_IDEMPOTENCY_TTL_SECONDS": "5"}, "PUENTE_IDEMPOTENCY_TTL_SECONDS must be between"),
    ({"PUENTE_MAX_BODY_BYTES": "-1"}, "PUENTE_MAX_BODY_BYTES must be between"),
    ({"PUENTE_LOG_LEVEL": "LOUD"}, "PUENTE_LOG_LEVEL must be one of"),
    ({"PUENTE_RATE_LIMIT_PER_SECOND": "fast"}, "PUENTE_RATE_LIMIT_PER_SECOND must be an integer"),
    ({"PUENTE_RATE_LIMIT_PER_SECOND": "-1"}, "PUENTE_RATE_LIMIT_PER_SECOND must be between 0 and"),
    ({"PUENTE_RATE_LIMIT_BURST": "0"}, "PUENTE_RATE_LIMIT_BURST must be between 1 and"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[m for _, m in BAD])
def test_bad_settings_name_the_variable(override: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings.load({**GOOD, **override})


def test_rate_limit_defaults_and_off() -> None:
    s = settings.load(GOOD)
    assert (s.rate_limit_per_second, s.rate_limit_burst) == (100, 200)
    custom = settings.load({**GOOD, "PUENTE_RATE_LIMIT_PER_SECOND": "5", "PUENTE_RATE_LIMIT_BURST": "10"})
    assert (custom.rate_limit_per_second, custom.rate_limit_burst) == (5, 10)
    assert settings.load({**GOOD, "PUENTE_RATE_LIMIT_PER_SECOND": "0"}).rate_limit_per_second == 0  # off


def test_serve_exits_non_zero_with_the_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUENTE_")}
    env |= {**GOOD, "PUENTE_BROKER_URL": "kafka://nowhere"}
    r = subprocess.run([API_EXE, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "PUENTE_BROKER_URL must start with amqp:// or sqs://" in r.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "127.0.0.1"),
        ("10.89.1.10", "10.89.1.10"),
        (" 10.89.1.10, 10.60.0.0/16 ", "10.89.1.10,10.60.0.0/16"),
    ],
)
def test_forwarded_headers_are_believed_from_the_listed_peers_only(raw: str, expected: str) -> None:
    assert settings.load({**GOOD, "PUENTE_FORWARDED_ALLOW_IPS": raw}).forwarded_allow_ips == expected


@pytest.mark.parametrize(("raw", "message"), [("*", "not '\\*'"), ("10.89.1.10,lb1", "got 'lb1'")])
def test_forwarded_allow_ips_refuses_anyone_and_names(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"PUENTE_FORWARDED_ALLOW_IPS .*{message}"):
        settings.load({**GOOD, "PUENTE_FORWARDED_ALLOW_IPS": raw})


def test_serve_hands_the_trusted_peers_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from puente_api import __main__ as api_main

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(os, "environ", {**GOOD, "PUENTE_FORWARDED_ALLOW_IPS": "10.89.1.10"})
    assert api_main.main(["serve", "--workers", "1"]) == 0
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == "10.89.1.10"


def test_amqps_is_tls_on_5671_with_its_ca_and_never_plain_amqp() -> None:
    s = settings.load(
        {**GOOD, "PUENTE_BROKER_URL": "amqps://puente@mq.internal/puente?cacertfile=/etc/ca.pem"}
    )
    assert (s.broker.scheme, s.broker.port, s.broker.ca_file, s.broker.is_amqp) == (
        "amqps",
        5671,
        "/etc/ca.pem",
        True,
    )
    assert settings.load(GOOD).broker.scheme == "amqp" and settings.load(GOOD).broker.port == 5672
    with pytest.raises(SettingsError, match="cacertfile needs amqps://"):
        settings.load({**GOOD, "PUENTE_BROKER_URL": "amqp://puente@mq/puente?cacertfile=/etc/ca.pem"})
    with pytest.raises(SettingsError, match="unknown query parameters"):
        settings.load({**GOOD, "PUENTE_BROKER_URL": "amqps://puente@mq/puente?verify=verify_none"})


def test_amqps_against_a_plain_amqp_port_fails_instead_of_talking_plain_text(rabbit: Any) -> None:
    """The TLS handshake is required: a plain-text listener is an error, never a silent downgrade."""
    from puente_api.brokers import BrokerError, connect

    url = settings.parse_broker_url(f"amqps://guest@127.0.0.1:{rabbit.port}/%2F", "guest")
    broker = connect(url)
    try:
        with pytest.raises(BrokerError, match="unreachable"):
            broker.declare()
    finally:
        broker.close()


def test_amqps_with_a_missing_ca_file_is_a_broker_error_not_a_crash(tmp_path: Any) -> None:
    """The readiness check and the relay treat it as the broker being unreachable (503, retried)."""
    from puente_api.brokers import BrokerError, connect

    url = settings.parse_broker_url(f"amqps://puente@mq.internal/puente?cacertfile={tmp_path}/absent.pem")
    with pytest.raises(BrokerError, match="cannot load the CA file"):
        connect(url)
