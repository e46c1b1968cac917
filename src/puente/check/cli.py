"""``puente check``: refuse a deployment that cannot deliver the promise, before any change.

    puente check -i inventories/production [--vault-id production@FILE] [--facts] [--stack prod]

Reads the inventory as ansible-playbook reads it for playbooks/site.yml (ansible-core, with the
playbooks' group_vars), checks it against the rules of docs/CHECK.md and lists every problem at once:
exit status 2 when there is any, 0 when there is none. Nothing is changed anywhere; --facts runs one
read-only `ansible ... -m ansible.builtin.setup` (printed) to learn each host's OS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from puente.check.findings import Finding, show_path
from puente.shell import ROOT
from puente.vaults import add_arguments as add_vault_arguments
from puente.vaults import password_files

EXIT_PROBLEMS = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check",
        help="refuse a deployment that cannot deliver the promise (exit 2)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-i",
        "--inventory",
        action="append",
        default=[],
        help="Ansible inventory (directory or file; repeat for several sources)",
    )
    p.add_argument("--stack", help="also check Pulumi.<STACK>.yaml (the program's validation + placeholders)")
    add_vault_arguments(p)
    p.add_argument(
        "--facts",
        action="store_true",
        help="gather each host's OS facts first (read-only: ansible -m ansible.builtin.setup, "
        "gather_subset=!all,min); without it only cached facts are used",
    )
    # Tests: a project directory holding another Pulumi.<stack>.yaml.
    p.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_check)


def _vault_files(args: argparse.Namespace) -> list[str]:
    files = password_files(args.inventory, args.vault_password_file, args.vault_id)
    if not (args.vault_id or args.vault_password_file):
        for path in files:
            print(f"puente check: vault password: {show_path(path)} (the inventory's lab-only password file)")
    return files


def cmd_check(args: argparse.Namespace) -> int:
    if not args.inventory and not args.stack:
        print("puente check: give -i INVENTORY and/or --stack STACK", flush=True)
        return EXIT_PROBLEMS
    findings: list[Finding] = []
    notes: list[str] = []
    if args.inventory:
        from puente.check.inventory import prepare_ansible

        prepare_ansible()
        from puente.check import engine, facts, inventory

        password_files = _vault_files(args)
        vault_args = [a for v in args.vault_id for a in ("--vault-id", v)]
        vault_args += [a for f in password_files for a in ("--vault-password-file", f)]
        print(
            f"puente check: {', '.join(args.inventory)} as ansible-playbook reads it for playbooks/site.yml "
            "(inventory plugins, group_vars and host_vars, over the roles' defaults)",
            flush=True,
        )
        deployment = inventory.load(
            args.inventory, vault_ids=args.vault_id, vault_password_files=password_files
        )
        gathered = None
        if args.facts:
            gathered, problems = facts.gather(args.inventory, vault_args)
            findings += problems
        report = engine.check_inventory(deployment, gathered)
        findings = report.findings + findings
        notes += report.notes
        env = deployment.environment or "not marked (checked as production)"
        notes.insert(
            0,
            f"{len(deployment.hosts)} hosts, sites: {', '.join(deployment.sites) or 'none'}; environment: "
            f"{env}",
        )
    if args.stack:
        from puente.check import stack

        print(
            f"puente check: stack {args.stack} ({show_path(args.project_dir / f'Pulumi.{args.stack}.yaml')})"
        )
        findings += stack.check(args.stack, args.project_dir)
    for note in notes:
        print(f"note: {note}")
    for finding in findings:
        print(finding.block())
    if findings:
        print(f"puente check: {len(findings)} problem(s): this deployment is refused (nothing was changed).")
        return EXIT_PROBLEMS
    print("puente check: no problem found.")
    return 0
