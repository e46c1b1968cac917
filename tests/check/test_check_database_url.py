"""Rule 6: the API's database URLs name the leader-following load balancer, not a fixed member."""

from __future__ import annotations

from pathlib import Path

from check_helpers import check_lab, copy_lab, edit_yaml, one, run_check

FIXED = "postgresql://{{ puente_db_user }}@10.89.2.31:5432/{{ puente_db_name }}"


def test_a_database_url_naming_a_member_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    assert run_check("-i", lab).returncode == 0
    edit_yaml(lab / "group_vars" / "cloud.yml", lambda d: d.update(api_database_url=FIXED))
    proc = run_check("-i", lab)
    assert proc.returncode == 2, proc.stdout
    assert "[database-url-fixed-member]" in proc.stdout and "group_vars/cloud.yml:" in proc.stdout
    assert "the API node(s) cloud-api1 connect to 10.89.2.31, the PostgreSQL member cloud-db1" in proc.stdout
    assert "point api_database_url at the site's load balancer (cloud-edge1, onprem-edge1" in proc.stdout


def test_a_read_url_naming_a_member_by_name_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    read = "postgresql://{{ puente_db_user }}@onprem-db2:5433/{{ puente_db_name }}"
    edit_yaml(lab / "group_vars" / "onprem.yml", lambda d: d.update(api_database_read_url=read))
    finding = one(check_lab(lab), "api_database_read_url")
    assert "connect to onprem-db2, the PostgreSQL member onprem-db2" in finding
