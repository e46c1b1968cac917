"""Acceptance on the converged lab: every control passes or is waived; a node broken on purpose fails the
matching control, on that host only, with the evidence that shows why; the report verifies.

The breaks are reversible and undone in `finally` (never a restart or removal of a node). The lab comes
from the shared session fixture `lab` (tests/conftest.py: `puente lab up` once; PUENTE_LAB_READY=1 when the
lab is already up and converged).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_synthetic import audit_command
from headless_chromium import CHROMIUM, chromium

from puente.shell import ROOT, run

pytestmark = pytest.mark.lab
LAB_INVENTORY = "inventories/lab"
ARTIFACTS = ROOT / "reports" / "audit"
# The controls the breaks below must trip (pytest -k over the catalogue's test names).
BREAK_CONTROLS = (
    "test_ssh_key_only or test_firewall_ports_match_roles or test_listening_ports_match_roles "
    "or test_api_secrets_file_mode or test_gateway_refuses_unauthenticated "
    "or test_etcd_refuses or test_patroni_rest_is_https or test_api_database_urls_verify_full "
    "or test_alert_rules_loaded"
)


def audit(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    argv = audit_command(LAB_INVENTORY, out, "--connection", "podman", *extra)
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)
    report = out / "report.json"
    assert report.exists(), (
        f"no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc, json.loads(report.read_text())


def node_exec(node: str, script: str, check: bool = True) -> str:
    """A root shell command on a lab node (printed, like every command the project runs)."""
    proc = run(["podman", "exec", node, "sh", "-c", script], env=podman_env(), capture=True, check=check)
    return proc.stdout or ""


def podman_env() -> dict[str, str]:
    from puente.lab.podman import env

    return env()


def hosts_in(group: str) -> list[str]:
    """Lab nodes of an inventory group (the lab's own reader of inventories/lab: no vault needed)."""
    from puente.lab.inventory import load

    lab = load()
    return sorted(lab.nodes) if group == "all" else sorted(n.name for n in lab.in_group(group))


def onprem(group: str) -> list[str]:
    """Nodes of a group at the on-prem site (always in the lab), where the breaks are made."""
    return [h for h in hosts_in(group) if h in hosts_in("onprem")]


def test_converged_lab_passes_or_is_waived(lab, tmp_path_factory):
    out = tmp_path_factory.mktemp("lab-audit")
    proc, doc = audit(out)
    summary = doc["summary"]
    bad = [
        f"{r['control_id']} on {r['host']} {r['params']}: {(r['message'] or '-').splitlines()[0]}"
        for r in doc["results"]
        if r["status"] not in ("passed", "waived")
    ]
    assert not bad, "controls neither passed nor waived:\n" + "\n".join(bad)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert summary["status"] == "pass" and summary["counts"]["passed"] > 0
    hosts = {r["host"] for r in doc["results"]}
    assert hosts == set(hosts_in("all")), "every lab node is audited"
    assert len(doc["controls"]) >= 20
    # every waived result is covered by a justified, unexpired waiver
    for r in doc["results"]:
        if r["status"] == "waived":
            assert r["waiver"]["status"] == "active" and r["waiver"]["justification"]
    verified = subprocess.run(
        [sys.executable, "-m", "puente.cli", "audit", "verify", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "lab-report.html").write_text((out / "report.html").read_text())
    if CHROMIUM:
        chromium(
            tmp_path_factory.mktemp("chromium"),
            "--window-size=1100,1800",
            f"--screenshot={ARTIFACTS / 'lab-report.png'}",
            (out / "report.html").as_uri(),
        )
    print(f"lab audit: {doc['run']['duration_seconds']} s for {len(doc['results'])} results")


@contextlib.contextmanager
def password_login_enabled(node: str) -> Iterator[None]:
    """A drop-in that sorts before the role's 50-puente.conf (first value wins), then a reload."""
    drop_in = "/etc/ssh/sshd_config.d/00-puente-audit-break.conf"
    try:
        node_exec(node, f"printf 'PasswordAuthentication yes\\n' > {drop_in} && systemctl reload ssh")
        yield
    finally:
        node_exec(node, f"rm -f {drop_in} && systemctl reload ssh")


@contextlib.contextmanager
def port_opened(node: str, port: int) -> Iterator[None]:
    """A listener on the node's address and a firewall rule accepting it, both tagged and removed after."""
    unit = "puente-audit-break-listener"
    comment = "puente-audit-break"
    try:
        node_exec(
            node,
            f"systemd-run --unit={unit} --quiet python3 -m http.server {port} && nft insert rule "
            f"inet puente_filter input tcp dport {port} accept comment '\"{comment}\"'",
        )
        node_exec(
            node, f"for i in $(seq 50); do ss -Hltn | grep -q ':{port} ' && exit 0; sleep 0.1; done; exit 1"
        )
        yield
    finally:
        node_exec(
            node,
            f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; "
            f"for h in $(nft -a list chain inet puente_filter input | grep '{comment}' "
            "| sed -n 's/.*# handle //p'); do "
            "nft delete rule inet puente_filter input handle $h; done",
            check=False,
        )


@contextlib.contextmanager
def secret_readable(node: str, path: str) -> Iterator[None]:
    mode = node_exec(node, f"stat -c %a {shlex.quote(path)}").strip()
    try:
        node_exec(node, f"chmod 0644 {shlex.quote(path)}")
        yield
    finally:
        node_exec(node, f"chmod {mode} {shlex.quote(path)}")


@contextlib.contextmanager
def forged_client_id_passed_on(node: str) -> Iterator[None]:
    """The gateway's refusal of a caller-chosen X-Client-Id made to match nothing, then a reload."""
    conf = "/etc/nginx/nginx.conf"
    try:
        edit = "s/if ($http_x_client_id)/if ($http_x_client_id = audit-break-never-sent)/"
        node_exec(
            node,
            f"cp -p {conf} {conf}.audit-break && sed -i '{edit}' {conf} && "
            f"grep -q audit-break-never-sent {conf} && nginx -t -q && systemctl reload nginx",
        )
        yield
    finally:
        node_exec(node, f"mv {conf}.audit-break {conf} && systemctl reload nginx", check=False)


@contextlib.contextmanager
def file_edited(node: str, path: str, sed: str, then: str) -> Iterator[None]:
    """A configuration file edited with sed (then `then`, e.g. a restart), put back afterwards."""
    try:
        node_exec(node, f"cp -p {path} {path}.audit-break && sed -i {shlex.quote(sed)} {path} && {then}")
        yield
    finally:
        node_exec(node, f"mv {path}.audit-break {path} && {then}", check=False)


@contextlib.contextmanager
def alert_rules_unloaded(node: str) -> Iterator[None]:
    """Puente's rule file moved out of Prometheus's rules folder, then a reload (put back afterwards)."""
    rules, aside = "/etc/prometheus/rules/puente.rules.yml", "/etc/prometheus/puente.rules.yml.audit-break"
    try:
        node_exec(node, f"mv {rules} {aside} && systemctl reload prometheus && sleep 2")
        yield
    finally:
        node_exec(node, f"mv {aside} {rules} && systemctl reload prometheus && sleep 2", check=False)


@pytest.mark.destructive
def test_broken_nodes_fail_their_control_on_that_host_only(lab, tmp_path_factory):
    api_nodes = onprem("api_nodes")
    ssh_victim, secret_victim, port_victim = api_nodes[-1], api_nodes[0], onprem("dns")[0]
    gateway_victim = onprem("gateways")[0]
    etcd_victim, patroni_victim = hosts_in("witness")[0], onprem("postgresql")[-1]
    rules_victim = onprem("monitoring")[0]  # the on-prem site's Prometheus (on its DNS node in the lab)
    port = 4444
    out = tmp_path_factory.mktemp("lab-broken")
    with contextlib.ExitStack() as stack:
        stack.enter_context(password_login_enabled(ssh_victim))
        stack.enter_context(port_opened(port_victim, port))
        stack.enter_context(secret_readable(secret_victim, "/etc/puente/api-secrets.env"))
        stack.enter_context(forged_client_id_passed_on(gateway_victim))
        stack.enter_context(alert_rules_unloaded(rules_victim))
        # nothing in clear between sites: etcd without client-certificate authentication (the witness: the
        # cluster keeps its quorum), Patroni's REST API without its certificate (the nosync replica), the
        # API asking only for sslmode=require
        stack.enter_context(
            file_edited(
                etcd_victim,
                "/etc/default/etcd",
                's/ETCD_CLIENT_CERT_AUTH="true"/ETCD_CLIENT_CERT_AUTH="false"/; /^ETCD_TRUSTED_CA_FILE=/d',
                "systemctl restart etcd",
            )
        )
        stack.enter_context(
            file_edited(
                patroni_victim,
                "/etc/patroni/config.yml",
                "/^  certfile:/d; /^  keyfile:/d",
                "systemctl reload patroni && sleep 3",
            )
        )
        stack.enter_context(
            file_edited(ssh_victim, "/etc/puente/api.env", "s/sslmode=verify-full/sslmode=require/g", "true")
        )
        proc, doc = audit(out, "-k", BREAK_CONTROLS)
    assert proc.returncode == 1, "a broken node must fail the audit"

    expectations = [
        ("PUENTE-SSH-01", "passwordauthentication", ssh_victim, "passwordauthentication yes"),
        ("PUENTE-FW-02", "", port_victim, f"tcp/{port}"),
        ("PUENTE-FW-03", "", port_victim, f":{port}"),
        ("PUENTE-API-03", "", secret_victim, "0o644"),
        ("PUENTE-AUTH-01", "forged-client-id", gateway_victim, "401, not 400"),
        ("PUENTE-ETCD-01", "", etcd_victim, "without a certificate"),
        ("PUENTE-PG-06", "", patroni_victim, "with the CA"),
        ("PUENTE-API-04", "", ssh_victim, "sslmode=require"),
        ("PUENTE-MON-02", "", rules_victim, "alert rules not loaded"),
    ]
    for control, params, victim, seen in expectations:
        results = [r for r in doc["results"] if r["control_id"] == control and r["params"].startswith(params)]
        assert len(results) > 1, f"{control} ran on {len(results)} host(s): cannot show 'that host only'"
        failed = {r["host"]: r for r in results if r["status"] == "failed"}
        assert list(failed) == [victim], f"{control}: failed on {sorted(failed)}, broke only {victim}"
        evidence = "\n".join(e["what"] + "\n" + e["output"] for e in failed[victim]["evidence"])
        assert seen in evidence or seen in failed[victim]["message"], (
            f"{control} on {victim}: the evidence does not show {seen!r}:\n{evidence[:2000]}"
        )
    row = {h["host"]: h for h in doc["summary"]["hosts"]}
    assert {h for h, r in row.items() if r["status"] == "failed"} == {
        ssh_victim,
        port_victim,
        secret_victim,
        gateway_victim,
        etcd_victim,
        patroni_victim,
        rules_victim,
    }
    html = (out / "report.html").read_text()
    assert f"<strong>{ssh_victim}</strong>" in html
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "lab-broken-report.html").write_text(html)


@pytest.mark.destructive
def test_breaks_were_undone(lab, tmp_path_factory):
    """After the test above restored the nodes, the same controls pass again everywhere."""
    out = tmp_path_factory.mktemp("lab-restored")
    victims = ",".join(
        sorted(
            {
                *onprem("api_nodes"),
                *onprem("dns"),
                *onprem("gateways"),
                *onprem("postgresql"),
                *onprem("monitoring"),
                *hosts_in("witness"),
            }
        )
    )
    proc, doc = audit(out, "--limit", victims, "-k", BREAK_CONTROLS)
    assert {r["host"] for r in doc["results"]} == set(victims.split(","))
    still = [f"{r['control_id']} {r['host']}" for r in doc["results"] if r["status"] != "passed"]
    assert proc.returncode == 0 and not still, still


@pytest.mark.destructive
def test_drift_names_the_node_changed_by_hand(lab, tmp_path_factory):
    """`--drift`: the roles' check run (site.yml --check --diff) sees a file mode changed by hand."""
    victim = onprem("api_nodes")[0]
    out = tmp_path_factory.mktemp("lab-drift")
    with secret_readable(victim, "/etc/puente/api-secrets.env"):
        # --limit keeps the check run (and so the time the node stays broken) to that node
        proc, doc = audit(out, "--drift", "--limit", victim, "-k", "test_api_secrets_file_mode")
    drift = doc["drift"]
    assert drift is not None and (out / "drift.log").exists()
    assert drift["hosts"][victim]["changed"] >= 1, drift
    assert victim in drift["summary"] and drift["summary"].startswith("drift: "), drift["summary"]
    assert any(c.startswith(f"{victim}: ") for c in drift["changes"]), drift["changes"]
    listed = (out / "MANIFEST.sha256").read_text()
    assert "drift.log" in listed and "drift.json" in listed
    assert doc["drift"]["summary"] in proc.stdout
