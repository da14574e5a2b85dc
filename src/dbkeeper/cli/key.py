"""dbkeeper key generate FILE | key public FILE: the Ed25519 keys backups are signed with."""

from __future__ import annotations

import argparse
from typing import Any

from dbkeeper import signing
from dbkeeper.cli.common import add_json, emit_json


def register(sub: Any) -> None:
    p = sub.add_parser(
        "key",
        help="create a signing key, or print a signing key's verify key",
        description="Backups signed with a secret key (backup --sign-key FILE, config [signing] key) are checked"
        " with its public verify key (--verify-key, DBKEEPER_VERIFY_KEY, config [signing] verify_key) on the hosts"
        " that verify, restore, drill and prune: whoever can write the store cannot forge a signed backup.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    gen = actions.add_parser(
        "generate",
        help="write a new secret key to FILE (mode 0600, never over an existing file) and print its verify key",
    )
    gen.add_argument("file", metavar="FILE")
    add_json(gen)
    gen.set_defaults(run=run)
    pub = actions.add_parser("public", help="print the verify key of the secret key in FILE")
    pub.add_argument("file", metavar="FILE")
    add_json(pub)
    pub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    key = signing.generate(args.file) if args.action == "generate" else signing.load_signer(args.file)
    if args.json:
        emit_json({"ok": True, "file": args.file, "verify_key": key.public})
    else:
        print(key.public)
    return 0
