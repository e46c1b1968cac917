"""pytest plugin that turns pytest-testinfra tests into audit controls (``pytest -p puente.audit.plugin``).

What it adds to pytest + pytest-testinfra + pytest-xdist, and only that:
- each ``@control`` test runs once per inventory host of the control's groups (``--audit-inventory``);
  hosts are reached with testinfra's backends (``podman://NAME`` or ``ansible://NAME``), and all the tests
  of one host go to the same xdist worker (``--dist loadgroup``), so hosts are audited in parallel;
- the ``host`` fixture records evidence (see :mod:`puente.audit.evidence`);
- waivers (``--audit-waivers``) turn a covered failure into pytest's xfail, reported as "waived";
- control metadata, host and evidence become test-report properties, so pytest's own ``--junitxml``
  carries them; the controller assembles them into report.json and report.html (``--audit-report DIR``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import testinfra

from puente.audit import fixtures
from puente.audit import report as report_mod
from puente.audit.catalogue import control_of
from puente.audit.evidence import trim
from puente.audit.fixtures import EVIDENCE, STATE, TARGET
from puente.audit.inventory import Inventory, ssh_targets
from puente.audit.waivers import Waiver, WaiverError, find, load, today_utc

WAIVED_PREFIX = "waived: "
# Report properties the controller turns into report.json; stripped before JUnit so the XML keeps only the
# readable ones (control_id, severity, host, evidence ...).
PRIVATE = "puente_audit"
CONNECTIONS = ("ssh", "ansible", "podman")


class AuditState:
    def __init__(self, config: pytest.Config) -> None:
        opt = config.option
        self.connection: str = opt.audit_connection
        self.inventory: Inventory | None = None
        self.limit: list[str] = [p for p in (opt.audit_limit or "").split(",") if p]
        self.today: dt.date = dt.date.fromisoformat(opt.audit_today) if opt.audit_today else today_utc()
        self.waivers: list[Waiver] = []
        self.ssh: dict[str, dict[str, Any]] = {}  # host -> connection variables (ssh connection)
        self._hosts: dict[str, testinfra.host.Host | str] = {}
        self.snapshots: dict[str, dict[tuple[str, ...], Any]] = {}  # host -> EvidenceHost.snapshot cache

    def hosts_for(self, groups: list[str]) -> list[str]:
        assert self.inventory is not None
        import fnmatch

        hosts = self.inventory.hosts_in(groups)
        if self.limit:
            hosts = [h for h in hosts if any(fnmatch.fnmatchcase(h, p) for p in self.limit)]
        return hosts

    def _spec(self, name: str) -> tuple[str, dict[str, Any]]:
        assert self.inventory is not None
        if self.connection == "podman":
            return f"podman://{name}", {}
        if self.connection == "ansible":
            return f"ansible://{name}?ansible_inventory={self.inventory.path}&force_ansible=True", {}
        v = self.ssh[name]
        if v.get("connection") == "local":
            return "local://", {"sudo": bool(v.get("become"))}
        if v.get("connection") not in ("ssh", "smart", "paramiko"):  # e.g. a container connection plugin
            return f"ansible://{name}?ansible_inventory={self.inventory.path}&force_ansible=True", {}
        user = f"{v['user']}@" if v.get("user") else ""
        port = f":{v['port']}" if v.get("port") else ""
        # One multiplexed connection per host and worker: each probe then costs a round trip, not a login.
        mux = (
            "-o ControlMaster=auto -o ControlPersist=120s -o ControlPath=/tmp/puente-audit-%C "
            f"{v.get('args', '')}"
        )
        kwargs: dict[str, Any] = {"ssh_extra_args": mux.strip(), "sudo": bool(v.get("become"))}
        if v.get("key"):
            kwargs["ssh_identity_file"] = v["key"]
        return f"ssh://{user}{v['host']}{port}", kwargs

    def connect(self, name: str) -> testinfra.host.Host:
        """testinfra's host for an inventory name; probed once per worker so a dead host is an error."""
        if name not in self._hosts:
            assert self.inventory is not None
            spec, kwargs = self._spec(name)
            raw = testinfra.get_host(spec, **kwargs)
            try:
                probe = raw.run("true")
                ok, why = probe.rc == 0, f"exit {probe.rc}: {probe.stderr.strip()}"
            except Exception as exc:  # any backend failure means "cannot assess this host"
                ok, why = False, f"{type(exc).__name__}: {exc}"
            self._hosts[name] = raw if ok else f"cannot reach {name} over {spec}: {trim(why, 5, 400)}"
        found = self._hosts[name]
        if isinstance(found, str):
            raise ConnectionError(found)
        return found


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("puente-audit", "Puente audit controls")
    group.addoption(
        "--audit-inventory", metavar="PATH", help="Ansible inventory whose hosts the controls run on"
    )
    group.addoption(
        "--audit-connection",
        choices=CONNECTIONS,
        default="ssh",
        help="ssh (addresses, users and keys as Ansible resolves them; multiplexed), "
        "ansible (every command through Ansible: slow, any connection plugin), "
        "podman (lab nodes)",
    )
    group.addoption(
        "--audit-limit", metavar="HOSTS", help="comma-separated host names/patterns to audit (default: all)"
    )
    group.addoption("--audit-waivers", metavar="PATH", help="waivers YAML (see puente.audit.waivers)")
    group.addoption(
        "--audit-today", metavar="YYYY-MM-DD", help="date waivers are judged against (default: today, UTC)"
    )
    group.addoption("--audit-report", metavar="DIR", help="write report.json and report.html there")
    group.addoption("--audit-drift", metavar="FILE", help="drift summary (JSON) to include in the report")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "control(ctl): an audit control (puente.audit.catalogue.control)")
    try:
        state = AuditState(config)
        if config.option.audit_waivers:
            state.waivers = load(Path(config.option.audit_waivers))
    except (WaiverError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "puente_audit_inventory" in workerinput:
        state.inventory = Inventory.from_dict(workerinput["puente_audit_inventory"])
        state.ssh = workerinput.get("puente_audit_ssh", {})
    elif config.option.audit_inventory:
        venv_bin = str(Path(sys.executable).parent)
        if shutil.which("ansible-inventory") is None and Path(venv_bin, "ansible-inventory").exists():
            # run from the project's venv without activating it: Ansible's tools sit next to python
            os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
        try:
            state.inventory = Inventory.load(config.option.audit_inventory)
            if state.connection == "ssh":
                state.ssh = ssh_targets(config.option.audit_inventory)
        except Exception as exc:
            raise pytest.UsageError(f"cannot read inventory {config.option.audit_inventory}: {exc}") from exc
    config.stash[STATE] = state
    # Registered now, after pytest-testinfra's entry point: the last registered `host` fixture wins, and ours
    # is testinfra's host plus evidence, for the inventory host the control is parametrized with.
    config.pluginmanager.register(fixtures, "puente-audit-fixtures")
    if workerinput is None:
        config.pluginmanager.register(Collector(config, state), "puente-audit-collector")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the controller's parsed inventory to each worker instead of re-running Ansible."""
    state = node.config.stash[STATE]
    if state.inventory is not None:
        node.workerinput["puente_audit_inventory"] = state.inventory.to_dict()
        node.workerinput["puente_audit_ssh"] = state.ssh


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    ctl = control_of(metafunc.function)
    if ctl is None:
        return
    if "host" not in metafunc.fixturenames:
        raise pytest.UsageError(f"control {ctl.id} ({metafunc.function.__name__}) does not use `host`")
    state = metafunc.config.stash[STATE]
    if state.inventory is None:
        raise pytest.UsageError("audit controls need --audit-inventory PATH")
    hosts = state.hosts_for(list(ctl.groups))
    metafunc.parametrize(TARGET, hosts, ids=hosts)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        host = _host_of(item)
        if host:
            item.add_marker(pytest.mark.xdist_group(host))
        ctl = control_of(getattr(item, "function", None))
        if ctl is not None:
            item.extra_keyword_matches.add(ctl.id)  # `-k PUENTE-PG` selects controls by id


def _host_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(TARGET) if callspec is not None else None
    return value if isinstance(value, str) else ""  # NOTSET when no host is in the control's groups


def _params_of(item: pytest.Item, host: str) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is None or not host:
        return ""
    return "-".join(p for p in callspec.id.replace(host, "", 1).split("-") if p)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    ctl = control_of(getattr(item, "function", None))
    if ctl is None:
        return report
    host = _host_of(item)
    if call.when == "setup":
        item.user_properties += [("control_id", ctl.id), ("severity", ctl.severity), ("host", host)]
    decisive = (
        call.when == "call"
        or (call.when == "setup" and not report.passed)
        or (call.when == "teardown" and report.failed)
    )
    if not decisive:
        return report
    state: AuditState = item.config.stash[STATE]
    private: dict[str, Any] = {
        "control": ctl.to_dict(),
        "host": host,
        "params": _params_of(item, host),
        "when": call.when,
        "message": trim(call.excinfo.exconly(), 30, 2000) if call.excinfo else "",
        "waiver": None,
    }
    if not host:
        private["message"] = f"not applicable: no host of groups {', '.join(ctl.groups)} in the inventory"
    waiver = find(state.waivers, ctl.id, host) if host else None
    if waiver is not None:
        active = waiver.active(state.today)
        private["waiver"] = {**waiver.to_dict(), "status": "active" if active else "expired"}
        item.user_properties.append(
            ("waiver", f"{'active' if active else 'EXPIRED'} until {waiver.expires}: {waiver.justification}")
        )
        if call.when == "call" and report.failed and active:
            report.outcome = "skipped"
            report.wasxfail = (
                f"{WAIVED_PREFIX}{ctl.id} on {host} until {waiver.expires}: {waiver.justification}"
            )
    recorder = item.stash.get(EVIDENCE, None)
    records = recorder.to_list() if recorder else []
    private["evidence"] = records
    if recorder is not None and recorder.records:
        item.user_properties.append(("evidence", recorder.as_text()))
    item.user_properties.append((PRIVATE, json.dumps(private)))
    report.user_properties = list(item.user_properties)
    return report


class Collector:
    """Controller side: gathers the results of every worker and writes report.json / report.html."""

    def __init__(self, config: pytest.Config, state: AuditState) -> None:
        self.config = config
        self.state = state
        self.results: dict[str, dict[str, Any]] = {}
        self.started = dt.datetime.now(dt.UTC)
        self.t0 = time.monotonic()
        self.doc: dict[str, Any] | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        blobs = [v for k, v in report.user_properties if k == PRIVATE]
        if not blobs:
            return
        report.user_properties = [(k, v) for k, v in report.user_properties if k != PRIVATE]
        data = json.loads(str(blobs[-1]))
        if data["when"] != report.when:
            return
        prior = self.results.get(report.nodeid)
        data.update(nodeid=report.nodeid, status=_status(report, data), duration=round(report.duration, 3))
        if prior is not None and report.when == "teardown":  # a failing teardown turns a pass into an error
            prior.update(status="error", message=data["message"])
            return
        self.results[report.nodeid] = data

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        out = self.config.option.audit_report
        if not self.results and not out:
            return
        drift = None
        if self.config.option.audit_drift and Path(self.config.option.audit_drift).exists():
            drift = json.loads(Path(self.config.option.audit_drift).read_text())
        self.doc = report_mod.build(
            results=list(self.results.values()),
            inventory=self.state.inventory,
            hosts=self.state.hosts_for(["all"]) if self.state.inventory else None,
            waivers=self.state.waivers,
            started=self.started,
            duration=time.monotonic() - self.t0,
            today=self.state.today,
            connection=self.state.connection,
            command=[Path(sys.argv[0]).name, *sys.argv[1:]],
            workers=int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
            or getattr(self.config.option, "numprocesses", 0)
            or 0,
            drift=drift,
            exitstatus=int(exitstatus),
        )
        if out:
            report_mod.write(Path(out), self.doc)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.doc is None:
            return
        terminalreporter.section("puente audit")
        terminalreporter.line(report_mod.summary_line(self.doc))
        if self.config.option.audit_report:
            terminalreporter.line(f"report: {Path(self.config.option.audit_report) / 'report.html'}")


def _status(report: pytest.TestReport, data: dict[str, Any]) -> str:
    if not data["host"]:
        return "n/a"
    if report.when != "call":
        return "skipped" if report.skipped else "error"
    if report.skipped:
        return "waived" if str(getattr(report, "wasxfail", "")).startswith(WAIVED_PREFIX) else "skipped"
    return "failed" if report.failed else "passed"
