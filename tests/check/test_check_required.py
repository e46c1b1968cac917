"""Rule 1: required variables (puente_site, puente_dns_zone, the roles' required inputs)."""

from __future__ import annotations

from pathlib import Path

from check_helpers import OVERRIDES, check, check_lab, copy_filled, copy_lab, edit_yaml, one, run_check


def test_puente_site_undefined_on_a_site_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    good = run_check("-i", lab)
    assert good.returncode == 0, good.stdout + good.stderr
    edit_yaml(lab / "group_vars" / "witness.yml", lambda d: d.pop("puente_site"))
    proc = run_check("-i", lab)
    assert proc.returncode == 2, proc.stdout
    assert "[required-variable] group witness" in proc.stdout
    assert "puente_site is undefined for 1 host(s) (witness1)" in proc.stdout
    assert "set `puente_site: witness` in the inventory's group_vars/witness.yml" in proc.stdout


def test_a_required_role_input_missing_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    assert check_lab(lab) == []
    edit_yaml(lab / "group_vars" / "all" / "main.yml", lambda d: d.pop("api_wheelhouse_dir"))
    finding = one(check_lab(lab), "api_wheelhouse_dir")
    assert "role api, host(s) cloud-api1, onprem-api1, onprem-api2" in finding
    assert "a required input of role api (roles/api/meta/argument_specs.yml), is undefined" in finding


def test_an_empty_zone_is_refused(tmp_path: Path) -> None:
    """The zone every role's default derives names from: empty is as good as undefined."""
    lab = copy_lab(tmp_path)
    edit_yaml(OVERRIDES(lab), lambda d: d.update(puente_dns_zone=""))
    finding = one(check_lab(lab), "puente_dns_zone")
    assert "puente_dns_zone (the DNS zone PowerDNS serves and the gateway's name lives in) is empty" in (
        finding
    )


def test_the_lab_zone_in_a_production_inventory_is_refused(tmp_path: Path) -> None:
    filled = copy_filled(tmp_path)
    assert check(filled) == []
    edit_yaml(filled / "group_vars" / "all" / "main.yml", lambda d: d.update(puente_dns_zone="puente.lab"))
    finding = one(check(filled), "puente_dns_zone")
    assert "group_vars/all/main.yml:" in finding
    assert "puente_dns_zone is puente.lab, the lab's zone, for 9 host(s)" in finding
