"""`podium serve users|tokens|audit`: manage a shared server's people from its machine (the
data folder's users.sqlite3; a running server sees the change on its next request), and the
first admin at start-up (--admin-token, or a prompt on a terminal)."""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path

from orchestrator.service.users import ROLES, UserError, UserStore

MIN_TOKEN = 16


def add_parsers(serve) -> None:
    actions = serve.add_subparsers(dest="serve_action", metavar="{users,tokens,audit}",
                                   title="managing a shared server (run on its machine)")
    users = actions.add_parser("users", help="add, list or remove users").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="add a user (then `tokens create NAME`)")
    add.add_argument("name")
    add.add_argument("--role", default="member", help=f"one of {', '.join(ROLES)} (default member)")
    users.add_parser("list", help="the users and their roles")
    users.add_parser("remove", help="remove a user and its tokens (not the last admin)").add_argument("name")
    tokens = actions.add_parser("tokens", help="create, list or revoke tokens").add_subparsers(dest="action", required=True)
    tokens.add_parser("create", help="a new token for a user: shown once").add_argument("name")
    tokens.add_parser("list", help="tokens (their prefixes), whose, revoked when").add_argument("name", nargs="?")
    tokens.add_parser("revoke", help="revoke a token (its pod_… prefix) or all of a user's (the name)") \
        .add_argument("which")
    audit = actions.add_parser("audit", help="who created, cancelled, deleted what, when")
    audit.add_argument("--json", action="store_true", help="JSON lines (one event a line), for other tools")
    for parser in (*users.choices.values(), *tokens.choices.values(), audit):
        parser.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                            help="the server's data folder (default: as podium serve's)")


def manage(args, data_dir: Path) -> int:
    """One users/tokens/audit command against DATA/users.sqlite3."""
    if not (data_dir / "users.sqlite3").exists() and not (args.serve_action == "users" and args.action == "add"):
        print(f"no users in {data_dir} yet: `podium serve users add NAME --role admin` adds the first",
              file=sys.stderr)
        return 0 if args.serve_action == "audit" or args.action == "list" else 2
    data_dir.mkdir(parents=True, exist_ok=True)
    store = UserStore(data_dir / "users.sqlite3")
    try:
        return _run(store, args)
    finally:
        store.close()


def _run(store: UserStore, args) -> int:
    what = (args.serve_action, getattr(args, "action", None))
    if what == ("users", "add"):
        user = store.add(args.name, args.role)
        print(f"added {user.name} ({user.role}); give them a token: podium serve tokens create {user.name}")
    elif what == ("users", "list"):
        for row in store.users():
            print(f"{row['name']:<24} {row['role']:<7} {row['tokens']} token(s)  since {_when(row['created'])}")
    elif what == ("users", "remove"):
        store.remove(args.name)
        print(f"removed {args.name} and its tokens")
    elif what == ("tokens", "create"):
        token = store.create_token(args.name)
        print(token)
        print(f"the token of {args.name}: shown this once (only its hash is kept)", file=sys.stderr)
    elif what == ("tokens", "list"):
        for row in store.tokens(args.name):
            state = f"revoked {_when(row['revoked'])}" if row["revoked"] else "active"
            print(f"{row['token']:<22} {row['name']:<24} created {_when(row['created'])}  {state}")
    elif what == ("tokens", "revoke"):
        count = store.revoke(args.which)
        print(f"revoked {count} token(s): refused from the next request on")
    else:
        for row in store.audit_rows():
            if args.json:
                print(json.dumps(row, ensure_ascii=False))
            else:
                print(f"{_when(row['at'])}  {row['actor']:<16} {row['action']:<14} {row['target'] or ''}")
    return 0


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def first_admin(data_dir: Path, admin_token: str | None, needed: bool) -> None:
    """With no users yet: the first admin from --admin-token, or asked for on a terminal when
    `needed` (off loopback with no --token). Nothing asked when users exist."""
    store = UserStore(data_dir / "users.sqlite3")
    try:
        if store.any_users():
            if admin_token:
                print("podium serve: users exist already; --admin-token is ignored", file=sys.stderr)
            return
        if not admin_token and needed and sys.stdin.isatty():
            print("podium serve: no users yet. Choose the first admin's token (16 characters at least).",
                  file=sys.stderr)
            admin_token = getpass.getpass("admin token: ").strip()
        if not admin_token:
            return
        if len(admin_token) < MIN_TOKEN:
            raise UserError(f"--admin-token is shorter than {MIN_TOKEN} characters: give a longer one")
        store.add("admin", "admin", actor="serve")
        store.create_token("admin", actor="serve", chosen=admin_token)
        print("podium serve: the first admin is `admin`, with the token given", file=sys.stderr)
    finally:
        store.close()
