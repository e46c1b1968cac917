"""Rule 8: every TLS endpoint has its certificate files (the PKI), and the lab's CA stays in the lab."""

from __future__ import annotations

from pathlib import Path

from check_helpers import copy_filled, run_check


def test_production_without_the_etcd_certificate_paths_is_refused(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    assert run_check("-i", filled).returncode == 0
    (filled / "group_vars" / "etcd.yml").unlink()
    proc = run_check("-i", filled)
    assert proc.returncode == 2, proc.stdout
    for var in ("etcd_tls_certificate_src", "etcd_tls_key_src", "etcd_tls_ca_src"):
        assert f"{var} is not set: each etcd member's certificate" in proc.stdout
        assert "(etcd_tls_mode is provided)." in proc.stdout
    assert "[tls-certificate] role etcd, host(s)" in proc.stdout
    assert "inventories/production/group_vars/etcd.yml" in proc.stdout


def test_the_lab_ca_outside_the_lab_is_refused(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    with (filled / "group_vars" / "postgresql.yml").open("a") as f:
        f.write("postgresql_tls_mode: lab_ca\n")
    proc = run_check("-i", filled)
    assert proc.returncode == 2, proc.stdout
    assert "postgresql_tls_mode is lab_ca outside the lab" in proc.stdout


def test_production_without_the_brokers_certificate_paths_is_refused(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    rabbitmq = filled / "group_vars" / "rabbitmq.yml"
    kept = [line for line in rabbitmq.read_text().splitlines() if not line.startswith("rabbitmq_tls_")]
    rabbitmq.write_text("\n".join(kept) + "\n")
    proc = run_check("-i", filled)
    assert proc.returncode == 2, proc.stdout
    for var in ("rabbitmq_tls_certificate_src", "rabbitmq_tls_key_src"):
        assert f"{var} is not set: each broker's AMQPS certificate" in proc.stdout
    assert "inventories/production/group_vars/rabbitmq.yml" in proc.stdout
