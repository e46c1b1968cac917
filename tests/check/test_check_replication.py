"""Rule 5: no synchronous-standby candidate on the leader's own site."""

from __future__ import annotations

from pathlib import Path

from check_helpers import check_lab, copy_lab, edit_yaml, one, run_check


def test_a_second_sync_candidate_on_one_site_is_refused(tmp_path: Path) -> None:
    """The lab's pattern: onprem-db2 is `nosync`, so cloud-db1 is the on-prem leader's only candidate."""
    lab = copy_lab(tmp_path)
    assert run_check("-i", lab).returncode == 0
    edit_yaml(
        lab / "hosts.yml", lambda d: d["all"]["children"]["postgresql"]["hosts"].update({"onprem-db2": None})
    )
    proc = run_check("-i", lab)
    assert proc.returncode == 2, proc.stdout
    assert "[sync-standby-same-site] group postgresql, site onprem" in proc.stdout
    assert "2 synchronous-standby candidates on one site (onprem-db1, onprem-db2)" in proc.stdout
    assert "`postgresql_patroni_tags: {nosync: true}`" in proc.stdout


def test_members_on_one_site_only_are_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    edit_yaml(lab / "hosts.yml", lambda d: d["all"]["children"]["postgresql"]["hosts"].pop("cloud-db1"))
    finding = one(check_lab(lab), "every PostgreSQL member is on site onprem")
    assert finding.startswith("[sync-standby-same-site] group postgresql:")


def test_asynchronous_replication_chosen_on_purpose_is_not_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    edit_yaml(
        lab / "hosts.yml", lambda d: d["all"]["children"]["postgresql"]["hosts"].update({"onprem-db2": None})
    )
    edit_yaml(lab / "group_vars" / "postgresql.yml", lambda d: d.update(postgresql_synchronous_mode=False))
    assert check_lab(lab) == []
