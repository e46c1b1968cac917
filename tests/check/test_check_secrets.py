"""Rule 2: secrets still placeholders, vault files not encrypted (except in the lab), vault passwords
committed next to the vault."""

from __future__ import annotations

from pathlib import Path

from check_helpers import (
    FILLED_VAULT_PASSWORD,
    LAB_VAULT_PASSWORD,
    check,
    check_lab,
    copy_filled,
    copy_lab,
    one,
    run_check,
    vault_edit,
)

PLAIN_VAULT = """---
vault_postgresql_replication_password: plain-replication-5d2c8e1f
vault_postgresql_admin_password: plain-admin-9a4b7c3e
vault_api_database_password: plain-api-db-1e8f6a2d
vault_api_broker_password: plain-api-mq-7c3d9b5a
vault_powerdns_api_key: plain-pdns-4f2a8e6c1b
vault_postgresql_restapi_password: plain-restapi-3b9e5d7a
vault_pgbackrest_repo1_cipher_pass: plain-repo1-cipher-6e1a9c4d
vault_pgbackrest_repo2_cipher_pass: plain-repo2-cipher-2b7f5d8e
vault_pgbackrest_repo1_s3_key_secret: plain-repo1-s3-8d3c1f6a
vault_pgbackrest_repo2_s3_key_secret: plain-repo2-s3-4a9e2b7c
"""


def test_a_secret_still_change_me_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    vault = lab / "group_vars" / "lab" / "vault.yml"
    vault_edit(vault, lab / LAB_VAULT_PASSWORD, lambda d: d.update(vault_api_broker_password="CHANGE-ME"))
    proc = run_check("-i", lab)
    assert proc.returncode == 2, proc.stdout
    assert "[secret-placeholder]" in proc.stdout
    assert "vault.yml:" in proc.stdout and "vault_api_broker_password" in proc.stdout
    assert "the value is still the placeholder 'CHANGE-ME'" in proc.stdout
    vault_edit(
        vault, lab / LAB_VAULT_PASSWORD, lambda d: d.update(vault_api_broker_password="x9-real-enough")
    )
    assert run_check("-i", lab).returncode == 0


def test_a_plain_text_vault_is_refused_outside_the_lab(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    assert check(filled, [FILLED_VAULT_PASSWORD]) == []
    (filled / "group_vars" / "all" / "vault.yml").write_text(PLAIN_VAULT)
    finding = one(check(filled), "[vault-not-encrypted]")
    assert "group_vars/all/vault.yml: this vault file is plain text" in finding
    assert "ansible-vault encrypt" in finding


def test_the_lab_may_keep_a_plain_text_vault(tmp_path: Path) -> None:
    """The lab (puente_environment: lab) commits its vault password on purpose: no vault finding there."""
    lab = copy_lab(tmp_path)
    (lab / "group_vars" / "lab" / "vault.yml").write_text(PLAIN_VAULT)
    assert check_lab(lab) == []
    (lab / "group_vars" / "lab" / "overrides.yml").write_text(
        (lab / "group_vars" / "lab" / "overrides.yml")
        .read_text()
        .replace("puente_environment: lab", "puente_environment: qa")
    )
    assert "vault.yml: this vault file is plain text" in one(check_lab(lab), "[vault-not-encrypted]")


def test_a_vault_password_committed_in_a_production_inventory_is_refused(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    (filled / "vault-password.lab-only").write_text(FILLED_VAULT_PASSWORD.read_text())
    finding = one(check(filled), "[vault-password-committed]")
    assert "vault-password.lab-only: a vault password file sits in the inventory" in finding


def test_a_backup_passphrase_still_change_me_is_refused(tmp_path: Path) -> None:
    """The production example's pgBackRest secrets (vault.yml.example: CHANGE-ME) are caught by the same
    rule: a repository encrypted with a published passphrase is not encrypted."""
    filled = copy_filled(tmp_path)
    assert check(filled, [FILLED_VAULT_PASSWORD]) == []
    vault_edit(
        filled / "group_vars" / "all" / "vault.yml",
        FILLED_VAULT_PASSWORD,
        lambda d: d.update(vault_pgbackrest_repo1_cipher_pass="CHANGE-ME"),
    )
    finding = one(check(filled, [FILLED_VAULT_PASSWORD]), "[secret-placeholder]")
    assert "vault_pgbackrest_repo1_cipher_pass" in finding and "CHANGE-ME" in finding
