"""``puente audit``: run the control catalogue against an inventory and write the auditor's report.

    puente audit -i inventories/lab --out reports/audit [--drift] [--connection podman] [--sign-key KEY]
    puente audit verify reports/audit [-p KEY.pub | -P KEY]

The run is one plain pytest command (printed before it runs): pytest-testinfra reaches the hosts,
pytest-xdist audits hosts in parallel, pytest's --junitxml writes the CI form, and puente.audit.plugin adds
control ids, evidence, waivers and the JSON/HTML forms. Then MANIFEST.sha256 seals the directory, and with
--sign-key minisign signs it (MANIFEST.sha256.minisig).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from puente.audit import drift, manifest, report, signing
from puente.audit.signing import SigningError
from puente.audit.waivers import WaiverError, load
from puente.shell import ROOT, run
from puente.vaults import LAB_VAULT_FILE

CATALOGUE = ROOT / "audit" / "controls"
WAIVERS = ROOT / "audit" / "waivers.yml"
# What a previous run left in --out; removed first so a report never mixes two runs.
_OWN_FILES = (
    report.JSON_NAME,
    report.HTML_NAME,
    report.JUNIT_NAME,
    "drift.json",
    "drift.log",
    manifest.NAME,
    signing.SIG_NAME,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "audit",
        help="audit hosts against the control catalogue; write the report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-i", "--inventory", help="Ansible inventory (file or directory)")
    p.add_argument("--out", type=Path, help="report directory (created; a previous report there is replaced)")
    p.add_argument(
        "--connection",
        choices=("ssh", "ansible", "podman"),
        default="ssh",
        help="ssh: as Ansible resolves each host's address/user/key (default); ansible: every "
        "probe through Ansible (slow; any connection plugin); podman: `podman exec` (lab nodes)",
    )
    p.add_argument("--limit", help="only these hosts (comma-separated names/patterns; also limits --drift)")
    p.add_argument(
        "--waivers", type=Path, default=WAIVERS, help=f"waivers file (default {WAIVERS.relative_to(ROOT)})"
    )
    p.add_argument("--today", help="judge waiver expiry as of this date (YYYY-MM-DD)")
    p.add_argument(
        "--vault-password-file",
        type=Path,
        help="for an inventory with ansible-vault values (default: the inventory's "
        f"{LAB_VAULT_FILE}, if there is one, or ANSIBLE_VAULT_* from the environment)",
    )
    p.add_argument(
        "--drift",
        action="store_true",
        help="also run ansible-playbook --check --diff playbooks/site.yml and report drift",
    )
    p.add_argument("--fail-on-drift", action="store_true", help="exit non-zero when drift is found")
    p.add_argument("--workers", default="auto", help="pytest-xdist workers (default auto; 0 = no xdist)")
    p.add_argument("-k", dest="keyword", help="only controls matching this pytest -k expression")
    p.add_argument(
        "--sign-key",
        type=Path,
        metavar="FILE",
        help="minisign secret key: sign MANIFEST.sha256 (writes MANIFEST.sha256.minisig)",
    )
    p.add_argument(
        "--sign-password-file",
        type=Path,
        metavar="FILE",
        help="the secret key's password (first line), for a password-protected key; default: "
        f"${signing.PASSWORD_ENV}, else minisign asks on the terminal",
    )
    p.add_argument("--catalogue", type=Path, default=CATALOGUE, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)
    sub = p.add_subparsers(dest="audit_command", metavar="{verify,controls}")
    v = sub.add_parser(
        "verify",
        help="check a report directory against its MANIFEST.sha256 (and signature)",
        description="Exit 0: intact; 1: a problem (one FAIL line each); 2: bad input.",
    )
    v.add_argument("dir", type=Path)
    key = v.add_mutually_exclusive_group()
    key.add_argument(
        "-p",
        "--public-key",
        type=Path,
        metavar="FILE",
        help="minisign public key file: MANIFEST.sha256.minisig must be its signature",
    )
    key.add_argument(
        "-P",
        dest="public_key_text",
        metavar="KEY",
        help="the public key itself (the base64 line, as minisign -P)",
    )
    v.set_defaults(func=cmd_verify)
    c = sub.add_parser("controls", help="list the control catalogue (id, severity, groups, references)")
    c.add_argument("--markdown", action="store_true", help="as a Markdown table (docs/AUDIT.md)")
    c.add_argument("--catalogue", type=Path, default=CATALOGUE, help=argparse.SUPPRESS)
    c.set_defaults(func=cmd_controls)


def cmd_controls(args: argparse.Namespace) -> int:
    import importlib.util

    from puente.audit.catalogue import REGISTRY

    sys.path.insert(0, str(args.catalogue))  # control modules import their policy module as pytest would
    for path in sorted(args.catalogue.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"puente_audit_controls.{path.stem}", path)
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    rows = sorted(REGISTRY.values(), key=lambda c: c.id)
    for ctl in rows:
        refs = "; ".join(
            f"{k.upper()} {v if isinstance(v, str) else ', '.join(v)}" for k, v in ctl.refs.items()
        )
        groups = ", ".join(ctl.groups)
        if args.markdown:
            print(f"| {ctl.id} | {ctl.title} | {ctl.severity} ({ctl.impact}) | {groups} | {refs} |")
        else:
            print(f"{ctl.id:15} {ctl.severity:8} {','.join(ctl.groups):14} {ctl.title}  [{refs}]")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        print(f"puente audit verify: {args.dir} is not a directory", file=sys.stderr)
        return 2
    signature = None
    if args.public_key is not None or args.public_key_text is not None:
        try:
            key = signing.public_key(args.public_key, args.public_key_text)
            signing.minisign()
        except SigningError as exc:
            print(f"puente audit verify: {exc}", file=sys.stderr)
            return 2
        if (args.dir / manifest.NAME).is_file():
            signature = signing.verify(args.dir, key)
    result = manifest.verify(args.dir)
    problems = (signature.problems if signature else []) + result.problems
    for problem in problems:
        print(f"FAIL {problem}")
    if result.ok and not problems:
        if signature:
            print(f"OK: {manifest.NAME} signed by key {signature.key_id}: {signature.trusted_comment}")
        elif (args.dir / signing.SIG_NAME).is_file():
            print(f"NOTE: {signing.SIG_NAME} not checked: give the signer's public key (-p FILE or -P KEY)")
        print(f"OK: {len(result.ok_files)} files match {args.dir / manifest.NAME}")
        return 0
    print(f"verification FAILED: {len(problems)} problem(s) in {args.dir}", file=sys.stderr)
    return 1


def pytest_argv(args: argparse.Namespace, out: Path) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "puente.audit.plugin",
        str(args.catalogue),
        "--audit-inventory",
        args.inventory,
        "--audit-connection",
        args.connection,
        "--audit-report",
        str(out),
        f"--junitxml={out / report.JUNIT_NAME}",
        # xunit1: the JUnit schema that allows per-testcase <properties> (control id, evidence).
        "-o",
        "junit_family=xunit1",
        "-o",
        "junit_suite_name=puente-audit",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "-rfE",
    ]
    if args.waivers and args.waivers.exists():
        argv += ["--audit-waivers", str(args.waivers)]
    if args.limit:
        argv += ["--audit-limit", args.limit]
    if args.today:
        argv += ["--audit-today", args.today]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.workers != "0":
        argv += ["-n", args.workers, "--dist", "loadgroup"]
    if (out / "drift.json").exists():
        argv += ["--audit-drift", str(out / "drift.json")]
    return argv


def tool_env(args: argparse.Namespace, podman: bool = True) -> dict[str, str]:
    """Variables Ansible and podman need, set explicitly so the printed command is complete."""
    env = {}
    vault = args.vault_password_file
    if vault is None and not any(k.startswith("ANSIBLE_VAULT_") for k in os.environ):
        candidate = Path(args.inventory) / LAB_VAULT_FILE
        vault = candidate if candidate.is_file() else None
    if vault is not None:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(vault)
    if podman and args.connection == "podman" and "CONTAINERS_CONF" not in os.environ:
        try:
            from puente.lab.podman import env as lab_podman_env
        except ImportError:
            pass
        else:
            env.update(lab_podman_env())
    return env


def _signing_key(args: argparse.Namespace) -> tuple[signing.SecretKey | None, str | None]:
    if args.sign_key is None:
        if args.sign_password_file is not None:
            raise SigningError("--sign-password-file without --sign-key")
        return None, None
    key = signing.read_secret_key(args.sign_key)
    secret = signing.password(args.sign_password_file)
    signing.check_can_sign(key, secret)
    return key, secret


def _prepare_out(out: Path) -> None:
    if out.exists():
        leftovers = [p for p in out.iterdir() if p.name not in _OWN_FILES]
        if leftovers and not (out / report.JSON_NAME).exists():
            raise SystemExit(
                f"puente audit: {out} holds other files ({leftovers[0].name}, ...): "
                "give an empty or new directory"
            )
        for name in _OWN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def cmd_run(args: argparse.Namespace) -> int:
    if not args.inventory or not args.out:
        print(
            "puente audit: -i INVENTORY and --out DIR are required (or `puente audit verify DIR`)",
            file=sys.stderr,
        )
        return 2
    if not Path(args.inventory).exists():
        print(f"puente audit: inventory {args.inventory} does not exist", file=sys.stderr)
        return 2
    try:
        if args.waivers and args.waivers.exists():
            load(args.waivers)  # a malformed waivers file stops here, before any host is touched
        key, secret = _signing_key(args)  # so does a key that could not sign
    except (WaiverError, SigningError) as exc:
        print(f"puente audit: {exc}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    _prepare_out(out)
    drift_doc = None
    if args.drift:
        drift_doc = drift.check(args.inventory, out, env=tool_env(args, podman=False), limit=args.limit)
        (out / "drift.json").write_text(json.dumps(drift_doc, indent=1) + "\n")
        print(drift_doc["summary"])
    proc = run(pytest_argv(args, out), check=False, env=tool_env(args), cwd=ROOT)
    if not (out / report.JSON_NAME).exists():
        print(f"puente audit: pytest exited {proc.returncode} without writing a report", file=sys.stderr)
        return proc.returncode or 1
    manifest.write(out)
    doc = report.load(out)
    print(report.summary_line(doc))
    print(f"report: {out / report.HTML_NAME} (JUnit: {report.JUNIT_NAME}, JSON: {report.JSON_NAME})")
    if key is None:
        print(f"{manifest.NAME} is not signed (--sign-key KEY signs it with minisign; docs/AUDIT.md)")
    else:
        signed = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            sig = signing.sign(out, key, secret, signing.trusted_comment(doc, signed))
        except SigningError as exc:
            print(f"puente audit: the report is written but NOT signed: {exc}", file=sys.stderr)
            return 2
        print(f"signed: {sig} (check it: puente audit verify {out} -p PUBLIC_KEY)")
    rc = proc.returncode
    if rc == 0 and args.fail_on_drift and drift_doc and drift_doc["summary"] != "drift: none":
        rc = 3
    return rc
