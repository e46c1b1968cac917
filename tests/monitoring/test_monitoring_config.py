"""The monitoring configuration rendered from the lab inventory by the role's own templates passes
`promtool check config` and `amtool check-config`, and scrapes what issue 12 asks: every node of BOTH
sites from each site's Prometheus, the services' own /metrics, alerts to the site's own Alertmanager."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "roles" / "monitoring" / "files" / "rules" / "puente.rules.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"

pytestmark = pytest.mark.skipif(
    not (Path(PROMTOOL).exists() and Path(AMTOOL).exists()),
    reason="promtool/amtool missing: scripts/bootstrap.sh installs Debian's prometheus and alertmanager",
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitoring")
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "ansible-playbook"),
            "-i",
            "inventories/lab",
            "--vault-password-file",
            "inventories/lab/vault-password.lab-only",
            "tests/monitoring/render_config.yml",
            "-e",
            f"out={out}",
        ],
        cwd=REPO,
        # a local connection: Ansible's own strategy (Mitogen's expects a remote interpreter)
        env={**os.environ, "ANSIBLE_STRATEGY": "linear"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return out


def lab_hosts() -> dict[str, dict[str, Any]]:
    """{host: {"site": ..., "address": ...}} of the lab's nodes, from hosts.yml."""
    tree = yaml.safe_load((REPO / "inventories" / "lab" / "hosts.yml").read_text())
    out = {}
    for site, body in tree["all"]["children"]["lab"]["children"].items():
        for host, hv in body["hosts"].items():
            out[host] = {"site": site, "address": hv["ansible_host"]}
    return out


def config(rendered: Path, host: str) -> dict[str, Any]:
    return yaml.safe_load((rendered / f"{host}-prometheus.yml").read_text())


@pytest.mark.parametrize("host", ["onprem-dns1", "cloud-sqs1"])
def test_promtool_accepts_the_configuration(rendered: Path, tmp_path: Path, host: str):
    cfg = config(rendered, host)
    # the node's paths, here: the rules and the CA file (promtool opens both)
    cfg["rule_files"] = [str(RULES)]
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    for job in cfg["scrape_configs"]:
        if "tls_config" in job:
            job["tls_config"]["ca_file"] = str(ca)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([PROMTOOL, "check", "config", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("host", ["onprem-dns1", "cloud-sqs1"])
def test_amtool_accepts_the_configuration(rendered: Path, host: str):
    path = rendered / f"{host}-alertmanager.yml"
    proc = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    receivers = yaml.safe_load(path.read_text())["receivers"]
    assert receivers[0]["webhook_configs"][0]["url"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("host", ["onprem-dns1", "cloud-sqs1"])
def test_each_prometheus_scrapes_every_node_of_both_sites(rendered: Path, host: str):
    hosts = lab_hosts()
    jobs = {job["job_name"]: job for job in config(rendered, host)["scrape_configs"]}
    static = jobs["node"]["static_configs"]
    seen = {sc["labels"]["node"]: (sc["labels"]["site"], sc["targets"][0]) for sc in static}
    assert set(seen) >= set(hosts)
    for name, facts in hosts.items():
        assert seen[name] == (facts["site"], f"{facts['address']}:9100")
    assert {"onprem", "cloud", "witness"} <= {site for site, _ in seen.values()}


def test_the_services_own_metrics_are_scraped(rendered: Path):
    jobs = {job["job_name"]: job for job in config(rendered, "onprem-dns1")["scrape_configs"]}
    services = {"node", "postgres", "patroni", "etcd", "haproxy", "nginx", "rabbitmq", "powerdns", "api"}
    services |= {"api_relay", "api_worker"}
    assert services <= set(jobs)
    assert jobs["patroni"]["scheme"] == "https" and jobs["patroni"]["tls_config"]["ca_file"]
    etcd = {sc["labels"]["node"] for sc in jobs["etcd"]["static_configs"]}
    assert etcd == {"onprem-db1", "cloud-db1", "witness1"}
    assert all(t["targets"][0].endswith(":2381") for t in jobs["etcd"]["static_configs"])


def test_alerts_go_to_the_own_sites_alertmanager(rendered: Path):
    hosts = lab_hosts()
    for host in ("onprem-dns1", "cloud-sqs1"):
        targets = config(rendered, host)["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
        assert targets == [f"{hosts[host]['address']}:9093"]
