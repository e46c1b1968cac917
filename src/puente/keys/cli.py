"""``puente keys create|list|revoke|rotate -i INVENTORY``: the API's client keys.

    puente keys create CLIENT -i inventories/production [--label TEXT]   # the new key is the last line
    puente keys list -i inventories/production [--client CLIENT]
    puente keys revoke KEY_ID -i inventories/production
    puente keys rotate KEY_ID -i inventories/production                  # the new key is the last line

Runs playbooks/keys.yml (printed), which runs the API's own ``puente-api keys ...`` on one API node
(the first of ``api_nodes``; ``--limit HOST`` for another), against the database through that site's load
balancer. Keys live only as hashes in the replicated database, so a key works on both sites. The token is
handed over through a 0600 file on the controller, never through Ansible's output.
"""

from __future__ import annotations

import argparse
import sys

from puente.keys.remote import run_keys
from puente.vaults import add_arguments as add_vault_arguments


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "keys",
        help="create, list, revoke or rotate the API's client keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new key for CLIENT (printed as the last line)")
    create.add_argument("client", metavar="CLIENT")
    create.add_argument("--label", help="a note kept with the key (who holds it, what for)")
    listing = actions.add_parser("list", help="key ids, clients, created/revoked (never a token)")
    listing.add_argument("--client", help="only this client's keys")
    revoke = actions.add_parser("revoke", help="refuse KEY_ID from now on (both sites within 5 s)")
    revoke.add_argument("key_id", metavar="KEY_ID")
    rotate = actions.add_parser("rotate", help="a new key for KEY_ID's client, then revoke KEY_ID")
    rotate.add_argument("key_id", metavar="KEY_ID")
    for sub in (create, listing, revoke, rotate):
        sub.add_argument("-i", "--inventory", action="append", required=True, help="Ansible inventory")
        sub.add_argument("--limit", help="the API node to run on (default: the first of api_nodes)")
        add_vault_arguments(sub)
        sub.set_defaults(func=cmd_keys)


def api_argv(args: argparse.Namespace) -> list[str]:
    """The arguments of ``puente-api keys`` for this invocation."""
    if args.action == "create":
        return ["create", args.client] + (["--label", args.label] if args.label else [])
    if args.action == "list":
        return ["list"] + (["--client", args.client] if args.client else [])
    return [args.action, args.key_id]


def cmd_keys(args: argparse.Namespace) -> int:
    result = run_keys(
        api_argv(args),
        args.inventory,
        vault_password_files=args.vault_password_file,
        vault_ids=args.vault_id,
        limit=args.limit,
    )
    if result.stderr:
        print(result.stderr, file=sys.stderr)
    if result.stdout:
        print(result.stdout, flush=True)
    return result.rc
