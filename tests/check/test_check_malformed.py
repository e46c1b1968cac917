"""Bad input is a finding (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

from check_helpers import FILLED_VAULT_PASSWORD, copy_filled, copy_lab, run_check


def _refused(proc) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return str(proc.stdout)


def test_an_inventory_that_does_not_exist(tmp_path: Path) -> None:
    out = _refused(run_check("-i", tmp_path / "nothing"))
    assert "this inventory source does not exist." in out


def test_hosts_yml_that_is_not_yaml(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    (lab / "hosts.yml").write_text("all:\n  children:\n    onprem: [\n")
    out = _refused(run_check("-i", lab))
    assert "hosts.yml\n    no inventory plugin could read this file (not valid YAML:" in out


def test_group_vars_that_are_not_yaml(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    (lab / "group_vars" / "api_nodes.yml").write_text("api_workers: [\n")
    out = _refused(run_check("-i", lab))
    assert "group_vars/api_nodes.yml\n    Ansible cannot read this file (host " in out


def test_a_wrong_vault_password(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    out = _refused(run_check("-i", filled, "--vault-password-file", wrong))
    assert "group_vars/all/vault.yml\n    Ansible cannot read this file" in out
    assert "Decryption failed" in out
    assert run_check("-i", filled, "--vault-password-file", FILLED_VAULT_PASSWORD).returncode == 0


def test_a_vault_password_file_that_does_not_exist(tmp_path: Path) -> None:
    out = _refused(run_check("-i", copy_filled(tmp_path), "--vault-password-file", tmp_path / "none"))
    assert "[vault] vault password" in out


def test_nothing_to_check() -> None:
    proc = run_check()
    assert proc.returncode == 2
    assert "give -i INVENTORY and/or --stack STACK" in proc.stdout
