"""puente.templating renders the shared templates exactly as Ansible's `template` module does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.plugins.filter.core import comment as ansible_comment
from stacks_helpers import cloud_config_errors

from puente import templating

VARIABLES = {
    "api_site": "cloud",
    "api_site_role": "secondary",
    "api_database_url": "postgresql://puente@db.example:5432/puente",
    "api_database_read_url": "postgresql://puente@db.example:5433/puente",
    "api_broker_url": "sqs://puente-dev-events.fifo?region=eu-west-1",
    "api_idempotency_ttl_seconds": 86400,
    "api_max_body_bytes": 65536,
    "api_log_level": "INFO",
    "api_rate_limit_per_second": 100,
    "api_rate_limit_burst": 200,
    "api_forwarded_allow_ips": "10.60.0.0/16",
    "api_database_password": "correct-horse-battery-staple-42",
    "api_broker_password": "",
}


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [
        ("Ansible managed", {}),
        ("two\nlines", {}),
        ("x", {"style": "c"}),
        ("block\ntext", {"style": "cblock"}),
        ("markup", {"style": "xml"}),
        ("erl", {"style": "erlang"}),
        ("custom", {"decoration": ";; ", "prefix_count": 2}),
    ],
)
def test_comment_filter_matches_ansible(text: str, kwargs: dict) -> None:
    assert templating.comment(text, **kwargs) == ansible_comment(text, **kwargs)


def test_unknown_comment_style_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid style"):
        templating.comment("x", style="fortran")


def test_shared_templates_render_identically_with_ansible(tmp_path: Path) -> None:
    names = ["api/runtime.env.j2", "api/secrets.env.j2"]
    playbook = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "connection": "local",
            "tasks": [
                {
                    "ansible.builtin.template": {
                        "src": str(templating.TEMPLATES_DIR / n),
                        "dest": str(tmp_path / n),
                    }
                }
                for n in names
            ],
        }
    ]
    (tmp_path / "api").mkdir()
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook))
    (tmp_path / "vars.json").write_text(json.dumps(VARIABLES))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            "localhost,",
            "play.yml",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            "@vars.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in names:
        ours = templating.render(name, {**VARIABLES, "ansible_managed": "Ansible managed"})
        assert ours == (tmp_path / name).read_text(), name


def test_pulumi_side_marks_the_file_as_managed_by_pulumi() -> None:
    text = templating.render("api/runtime.env.j2", VARIABLES)
    assert text.startswith("#\n# Managed by Pulumi from templates/api/runtime.env.j2")
    assert templating.parse_env_file(text)["PUENTE_BROKER_URL"] == VARIABLES["api_broker_url"]


def test_an_undefined_variable_is_an_error_as_in_ansible() -> None:
    with pytest.raises(Exception, match="api_log_level"):
        templating.render("api/runtime.env.j2", {k: v for k, v in VARIABLES.items() if k != "api_log_level"})


def test_cloud_init_renders_to_valid_cloud_config() -> None:
    text = templating.render(
        "cloud-init/node.yaml.j2",
        {
            "node_name": "cloud-db1",
            "site": "cloud",
            "groups": ["postgresql"],
            "ssh_authorized_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey puente@control",
        },
    )
    # cloud-init only reads user data whose FIRST line is exactly this header.
    assert text.splitlines()[0] == "#cloud-config"
    data = yaml.safe_load(text)
    assert data["hostname"] == "cloud-db1"
    user = data["users"][0]
    assert user["name"] == "puente" and user["lock_passwd"] is True
    assert user["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey puente@control"]
    assert data["ssh_pwauth"] is False and data["disable_root"] is True
    assert "PUENTE_GROUPS=postgresql" in data["write_files"][0]["content"]
    assert cloud_config_errors(text) == []


def test_cloud_config_schema_check_can_fail() -> None:
    errors = cloud_config_errors(
        "#cloud-config\npackage_update: often\nusers: [{name: puente, lock_passwd: 'no'}]\n"
    )
    assert sorted(e.split(":")[0] for e in errors) == ["package_update", "users.0"]
    assert cloud_config_errors("hostname: x\n") == ["user data does not start with #cloud-config"]
