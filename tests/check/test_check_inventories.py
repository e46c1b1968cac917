"""The shipped inventories through the real CLI: the production example is refused with every placeholder
listed, the lab passes, a filled-in copy of production passes (with and without its vault password)."""

from __future__ import annotations

from check_helpers import FILLED, FILLED_VAULT_PASSWORD, REPO, run_check


def test_production_example_is_refused_with_every_problem_listed() -> None:
    proc = run_check("-i", "inventories/production")
    out = proc.stdout
    assert proc.returncode == 2, out + proc.stderr
    assert "Traceback" not in out + proc.stderr
    # documentation addresses and names, each where it is written
    assert "inventories/production/hosts.yml:12 host edge1.dc1.example.net" in out
    assert "ansible_host 192.0.2.10 is a documentation address (RFC 5737 TEST-NET-1)" in out
    assert "the host name is in example.net, a documentation domain" in out
    assert "inventories/production/group_vars/dns.yml:6 dns_client_cidrs[1]" in out
    assert "198.51.100.0/24 is a documentation network (RFC 5737 TEST-NET-2)" in out
    # what the roles need and the inventory lacks
    assert "puente_site is undefined" not in out  # group_vars/<site>.yml set it
    assert "inventories/production/group_vars/all/main.yml:17 puente_dns_zone" in out
    assert "puente.example.com is in example.com, a documentation domain" in out
    assert "needs vault_api_database_password, which is undefined" in out
    # the topology: the proven shape (db2 nosync, an etcd member per site plus the witness) is there, but
    # without the stack's outputs (no Pulumi CLI here) the cloud members are missing, and that is said
    assert "2 synchronous-standby candidates on one site" not in out
    assert "losing site onprem leaves 1 of 2 etcd members, below the quorum of 2" in out
    assert "every PostgreSQL member is on site onprem" in out
    assert "the cloud members come from the Pulumi stack's cloudNodes" in out
    assert "problem(s): this deployment is refused" in out


def test_lab_passes() -> None:
    proc = run_check("-i", "inventories/lab")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "environment: lab" in proc.stdout
    assert "puente check: no problem found." in proc.stdout


def test_filled_in_production_passes_without_the_vault_password() -> None:
    proc = run_check("-i", FILLED.relative_to(REPO))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "encrypted, not inspected (no vault password given)" in proc.stdout
    assert "sites: onprem, cloud, witness" in proc.stdout  # cloud-db1 from the stack outputs


def test_filled_in_production_passes_with_its_vault_password() -> None:
    proc = run_check("-i", FILLED, "--vault-password-file", FILLED_VAULT_PASSWORD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not inspected" not in proc.stdout
