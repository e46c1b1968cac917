"""Filter common_lockout_problems (roles/common/filter_plugins/common_firewall.py): what in a run would lock
the operator out of a node. The refused run on the lab is tests/roles/test_common.py's
test_firewall_that_would_cut_the_operator_is_refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from puente_test_support import load_module

REPO = Path(__file__).resolve().parents[2]
fw = load_module(REPO / "roles" / "common" / "filter_plugins" / "common_firewall.py")

RULES = fw.common_firewall_rules([[{"port": 22, "proto": "tcp", "from": ["10.0.0.0/24"]}]], {}, {})
KEY_FILE = {"stat": {"exists": True, "size": 91}}
NO_KEY_FILE = {"stat": {"exists": False}}
USERS = [{"name": "puente", "authorized_keys": ["ssh-ed25519 AAAA... ops"]}, {"name": "other"}]


def problems(user: str = "puente", **changes: Any) -> list[str]:
    args: dict[str, Any] = {
        "permit_root_login": "no",
        "key_file": KEY_FILE,
        "users": USERS,
        "firewall_rules": RULES,
        "ssh_client": "10.0.0.5",
        "sshd_port": 22,
    }
    return fw.common_lockout_problems(user, **{**args, **changes})


def test_an_operator_with_a_key_inside_the_admin_network_is_let_through() -> None:
    assert problems() == []


def test_root_login_refused_while_connecting_as_root() -> None:
    (message,) = problems("root")
    assert "common_sshd_permit_root_login" in message
    assert problems("root", permit_root_login="prohibit-password") == []


@pytest.mark.parametrize(
    ("user", "key_file", "refused"),
    [
        ("other", NO_KEY_FILE, True),  # no file, no listed key
        ("other", {"stat": {"exists": True, "size": 0}}, True),  # an empty file
        ("puente", NO_KEY_FILE, False),  # common_users gives it a key
        ("other", KEY_FILE, False),  # its own file has keys
        ("other", {"skipped": True, "changed": False}, False),  # not read: no SSH login
        ("other", None, False),
    ],
)
def test_an_account_left_without_a_key_is_refused(user: str, key_file: Any, refused: bool) -> None:
    found = problems(user, key_file=key_file)
    assert bool(found) is refused
    assert all(f"{user} has no ~/.ssh/authorized_keys" in m for m in found)


def test_a_firewall_that_would_cut_this_session_is_refused() -> None:
    (message,) = problems(ssh_client="192.0.2.9")
    assert "192.0.2.9" in message and "would cut it" in message and "tcp/22" in message
    assert problems(ssh_client="192.0.2.9", sshd_port=2222)  # the sshd port moved, nothing lets it in
    assert problems(ssh_client="192.0.2.9", firewall_rules=None) == []  # the role's firewall is off
    assert problems(ssh_client="") == []  # not over SSH


def test_every_problem_is_named_at_once() -> None:
    assert len(problems("root", key_file=NO_KEY_FILE, users=[], ssh_client="192.0.2.9")) == 3
