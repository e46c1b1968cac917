"""Filters of the `rabbitmq` role: which users and policies differ from what the broker holds.

The role reads the broker once per run (``rabbitmqctl export_definitions``, tasks/probe.yml). The
community.rabbitmq modules query it again for every item, and each query starts an Erlang VM:
rabbitmq_user runs five (status, list_users, list_user_permissions, list_user_topic_permissions,
authenticate_user), about 2 s of a no-op run for one user, rabbitmq_policy one per policy. These filters
compare each declared item with the export, as the modules would, and keep only the items the modules
would change; those still go through the modules, which make the change.

Password hashes: RabbitMQ stores base64(salt + H(salt + password)), a 4-byte salt and H the user's
``hashing_algorithm`` (rabbit_password_hashing_sha256 by default; https://www.rabbitmq.com/docs/passwords).
A hash this filter cannot read (another algorithm, a user without a password) counts as different.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

_HASHES: dict[str, Callable[..., Any]] = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
_SALT = 4
_NONE = "^$"  # rabbitmq_user's default for a privilege left out


def rabbitmq_password_matches(password: str, password_hash: str, algorithm: str) -> bool:
    """Whether ``password`` is the one ``password_hash`` was made from."""
    hasher = _HASHES.get(algorithm)
    if hasher is None or not password_hash:
        return False
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except (binascii.Error, ValueError):
        return False
    salt, digest = raw[:_SALT], raw[_SALT:]
    return hmac.compare_digest(hasher(salt + str(password).encode("utf-8")).digest(), digest)


def _tags(value: Any) -> set[str]:
    """Tags as a set: the export lists them (3.10), older brokers wrote one comma-separated string."""
    if isinstance(value, str):
        return {tag.strip() for tag in value.split(",") if tag.strip()}
    return {str(tag) for tag in value or []}


def _wanted_permissions(user: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Per vhost (configure, write, read), with rabbitmq_user's defaults: no entry at all means '/' with
    nothing allowed, a privilege left out means nothing allowed."""
    entries = user.get("permissions") or [{"vhost": "/"}]
    return {
        str(p.get("vhost") or "/"): (
            str(p.get("configure_priv") or _NONE),
            str(p.get("write_priv") or _NONE),
            str(p.get("read_priv") or _NONE),
        )
        for p in entries
    }


def rabbitmq_users_to_apply(users: list[Mapping[str, Any]], definitions: Mapping[str, Any]) -> list[Any]:
    """The declared users (``rabbitmq_users``) whose account, password, tags or permissions differ from
    the export ``definitions`` (rabbitmqctl export_definitions, parsed)."""
    present = {str(u.get("name")): u for u in definitions.get("users") or []}
    permissions: dict[str, dict[str, tuple[str, str, str]]] = {}
    for p in definitions.get("permissions") or []:
        permissions.setdefault(str(p.get("user")), {})[str(p.get("vhost"))] = (
            str(p.get("configure")),
            str(p.get("write")),
            str(p.get("read")),
        )
    with_topic_permissions = {str(p.get("user")) for p in definitions.get("topic_permissions") or []}
    out = []
    for user in users:
        name = str(user["name"])
        have = present.get(name)
        if (
            have is None
            or not rabbitmq_password_matches(
                user.get("password") or "",
                have.get("password_hash") or "",
                have.get("hashing_algorithm") or "",
            )
            or _tags(have.get("tags")) != _tags(user.get("tags"))
            or permissions.get(name, {}) != _wanted_permissions(user)
            or name in with_topic_permissions  # the role declares none; rabbitmq_user would remove them
        ):
            out.append(user)
    return out


def rabbitmq_policies_to_apply(
    policies: list[Mapping[str, Any]], definitions: Mapping[str, Any]
) -> list[Any]:
    """The declared policies (``rabbitmq_policies``) that are missing or differ (pattern, apply-to,
    priority, definition), and those declared absent that still exist."""
    present = {(str(p.get("vhost")), str(p.get("name"))): p for p in definitions.get("policies") or []}
    out = []
    for policy in policies:
        have = present.get((str(policy["vhost"]), str(policy["name"])))
        if policy.get("state", "present") == "absent":
            if have is not None:
                out.append(policy)
            continue
        if (
            have is None
            or str(have.get("pattern")) != str(policy["pattern"])
            or str(have.get("apply-to")) != str(policy.get("apply_to") or "queues")
            or str(have.get("priority")) != str(policy.get("priority") or 0)
            or have.get("definition") != policy.get("definition")
        ):
            out.append(policy)
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "rabbitmq_users_to_apply": rabbitmq_users_to_apply,
            "rabbitmq_policies_to_apply": rabbitmq_policies_to_apply,
        }
