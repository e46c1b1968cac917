"""roles/rabbitmq/filter_plugins/rabbitmq_definitions.py: which declared users and policies differ from the
broker's export, so that only those are handed to community.rabbitmq's modules (no lab here; the lab's
no-op runs are test_site_idempotence.py and test_rabbitmq.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]
rd = load_module(REPO / "roles" / "rabbitmq" / "filter_plugins" / "rabbitmq_definitions.py")

# Made by RabbitMQ 3.10.8 itself (the lab's broker: add_user, then export_definitions), not by this code.
VECTORS = [
    ("test12", "Qi70rGmg3D2F507jAImxdW6MjGyF30P/Zw6pIUqe55dPa0JA"),
    ("S3cret pass-word_+=/x", "Jy6II5OIx3bbgY+wlq6gGQd5WNsDcKIQ9/GwLKbx0U20wvWX"),
]
SHA256 = "rabbit_password_hashing_sha256"
REGEX = r"^(puente\.shipments|puente\.labels)$"

USER: dict[str, Any] = {
    "name": "puente_api",
    "password": "test12",
    "tags": [],
    "permissions": [{"vhost": "puente", "configure_priv": REGEX, "write_priv": REGEX, "read_priv": REGEX}],
}
EXPORT: dict[str, Any] = {
    "rabbit_version": "3.10.8",
    "users": [
        {
            "name": "puente_api",
            "password_hash": VECTORS[0][1],
            "hashing_algorithm": SHA256,
            "tags": [],
            "limits": {},
        }
    ],
    "permissions": [
        {"user": "puente_api", "vhost": "puente", "configure": REGEX, "write": REGEX, "read": REGEX}
    ],
    "topic_permissions": [],
    "policies": [
        {
            "vhost": "puente",
            "name": "puente-api-queues",
            "pattern": r"^puente\.labels$",
            "apply-to": "queues",
            "priority": 10,
            "definition": {"dead-letter-exchange": "puente.dlx", "delivery-limit": 5},
        }
    ],
}
POLICY: dict[str, Any] = {
    "vhost": "puente",
    "name": "puente-api-queues",
    "pattern": r"^puente\.labels$",
    "apply_to": "queues",
    "priority": 10,
    "definition": {"dead-letter-exchange": "puente.dlx", "delivery-limit": 5},
}


@pytest.mark.parametrize(("password", "password_hash"), VECTORS)
def test_rabbitmqs_own_hashes_are_recognised(password: str, password_hash: str) -> None:
    assert rd.rabbitmq_password_matches(password, password_hash, SHA256)
    assert not rd.rabbitmq_password_matches(password + "x", password_hash, SHA256)


@pytest.mark.parametrize(
    ("password_hash", "algorithm"),
    [
        (VECTORS[0][1], "rabbit_password_hashing_sha512"),  # the right hash read with the wrong algorithm
        (VECTORS[0][1], "some_future_algorithm"),
        ("", SHA256),  # a user without a password
        ("not base64!", SHA256),
    ],
)
def test_a_hash_that_cannot_be_read_counts_as_different(password_hash: str, algorithm: str) -> None:
    assert not rd.rabbitmq_password_matches("test12", password_hash, algorithm)


def test_a_user_as_declared_is_left_alone() -> None:
    assert rd.rabbitmq_users_to_apply([USER], EXPORT) == []


def _export(**changes: Any) -> dict[str, Any]:
    export = copy.deepcopy(EXPORT)
    export.update(changes)
    return export


def _user(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(USER), **changes}


@pytest.mark.parametrize(
    ("user", "export"),
    [
        pytest.param(_user(), _export(users=[]), id="missing"),
        pytest.param(_user(password="rotated"), _export(), id="password rotated in the vault"),
        pytest.param(_user(tags=["management"]), _export(), id="tag added"),
        pytest.param(
            _user(),
            _export(users=[{**EXPORT["users"][0], "tags": ["administrator"]}]),
            id="tag added on the broker",
        ),
        pytest.param(
            _user(permissions=[{**USER["permissions"][0], "read_priv": ".*"}]), _export(), id="read widened"
        ),
        pytest.param(
            _user(),
            _export(permissions=[*EXPORT["permissions"], {**EXPORT["permissions"][0], "vhost": "/"}]),
            id="permissions on another vhost",
        ),
        pytest.param(_user(), _export(permissions=[]), id="permissions missing"),
        pytest.param(
            _user(),
            _export(
                topic_permissions=[{"user": "puente_api", "vhost": "puente", "exchange": "x", "write": ".*"}]
            ),
            id="topic permissions the role does not declare",
        ),
    ],
)
def test_a_user_that_differs_goes_to_the_module(user: dict[str, Any], export: dict[str, Any]) -> None:
    assert rd.rabbitmq_users_to_apply([user], export) == [user]


def test_no_permissions_means_nothing_on_the_default_vhost_as_the_module_sets() -> None:
    bare = _user(permissions=[])
    export = _export(
        permissions=[{"user": "puente_api", "vhost": "/", "configure": "^$", "write": "^$", "read": "^$"}]
    )
    assert rd.rabbitmq_users_to_apply([bare], export) == []
    assert rd.rabbitmq_users_to_apply([bare], _export(permissions=[])) == [bare]


def test_tags_written_as_one_string_by_older_brokers() -> None:
    export = _export(users=[{**EXPORT["users"][0], "tags": "management,monitoring"}])
    assert rd.rabbitmq_users_to_apply([_user(tags=["monitoring", "management"])], export) == []


def test_a_policy_as_declared_is_left_alone() -> None:
    assert rd.rabbitmq_policies_to_apply([POLICY], EXPORT) == []
    as_the_role_passes_it = {**POLICY, "priority": "10"}  # tasks/topology.yml: priority | string
    assert rd.rabbitmq_policies_to_apply([as_the_role_passes_it], EXPORT) == []


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({**POLICY, "name": "another"}, id="missing"),
        pytest.param({**POLICY, "pattern": "^puente\\."}, id="pattern"),
        pytest.param({**POLICY, "apply_to": "all"}, id="apply-to"),
        pytest.param({**POLICY, "priority": 5}, id="priority"),
        pytest.param(
            {**POLICY, "definition": {**POLICY["definition"], "delivery-limit": 10}}, id="definition"
        ),
        pytest.param({**POLICY, "vhost": "other"}, id="other vhost"),
    ],
)
def test_a_policy_that_differs_goes_to_the_module(policy: dict[str, Any]) -> None:
    assert rd.rabbitmq_policies_to_apply([policy], EXPORT) == [policy]


def test_a_policy_declared_absent_goes_to_the_module_only_while_it_exists() -> None:
    absent = {**POLICY, "state": "absent"}
    assert rd.rabbitmq_policies_to_apply([absent], EXPORT) == [absent]
    assert rd.rabbitmq_policies_to_apply([absent], _export(policies=[])) == []
