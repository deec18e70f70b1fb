"""Who may use a shared `podium serve`: users with a role, their tokens (only a scrypt hash of
each is kept), the page's sign-in sessions, what each used (quotas), and the audit trail.

Kept in DATA/users.sqlite3, beside the jobs. A token is `pod_<lookup>_<secret>`: the lookup
finds its row without trying every hash; the secret is checked against its scrypt hash once per
server process (then remembered by a fast digest), while the row itself is read on every request
so that a revocation (by this server or by `podium serve tokens revoke`) holds on the next one.
The audit table refuses UPDATE and DELETE (triggers): it only grows.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from orchestrator.service.db import open_db
from podium.errors import UsageError, one_line

SCHEMA_VERSION = 1
ROLES = ("admin", "member", "viewer", "worker")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN = re.compile(r"^pod_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # 16 MiB, some 50 ms a check
DAY = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a new user never inherits old jobs
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer', 'worker')),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lookup TEXT UNIQUE,  -- NULL: a token the admin chose (--admin-token), checked by its hash alone
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY,  -- sha256 of the cookie's random value
    token_id INTEGER REFERENCES tokens (id) ON DELETE CASCADE,  -- NULL: the server's --token
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    user_id INTEGER NOT NULL,
    at REAL NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0,
    rendered_s REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS usage_by_user ON usage (user_id, at);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


class UserError(UsageError):
    """A user or token operation that cannot be done as asked (one line: what and what to do)."""


@dataclass(frozen=True)
class User:
    """Who a request is from. id 0: the server's own admin (--token, or loopback with nothing
    configured), not a row."""
    id: int
    name: str
    role: str
    token_id: Optional[int] = None

    @property
    def sees_all(self) -> bool:
        return self.role in ("admin", "worker")


def check_name(name: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UserError(f"user name {name!r} has control characters: use letters, digits and . _ - @")
    if not NAME.match(name):
        raise UserError(f"user name {one_line(name, 70)!r} is not one: 1 to 64 letters, digits and . _ - @, "
                        "starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {one_line(role, 30)!r}: one of {', '.join(ROLES)}")
    return role


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, maxmem=64 << 20, **SCRYPT)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class UserStore:
    """The users, tokens, sessions, usage and audit of one data folder."""

    def __init__(self, path: Path, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._known: dict[str, int] = {}  # sha256(token) -> token id, once scrypt said yes
        self._hashing = threading.Lock()
        self._db = open_db(self.path, what="users", version=SCHEMA_VERSION, schema=_SCHEMA, error=UserError,
                           busy_timeout_s=busy_timeout_s)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _sql(self, query: str, params=()) -> list[sqlite3.Row]:
        from orchestrator.service.store import StoreUnavailable

        with self._lock:
            try:
                return self._db.execute(query, params).fetchall()
            except sqlite3.IntegrityError:
                raise
            except sqlite3.DatabaseError as err:
                raise StoreUnavailable(f"the users database cannot be used now ({one_line(str(err), 120)})") from None

    # users
    def any_users(self) -> bool:
        return bool(self._sql("SELECT 1 FROM users LIMIT 1"))

    def add(self, name: str, role: str, actor: str = "cli") -> User:
        check_name(name), check_role(role)
        try:
            self._sql("INSERT INTO users (name, role, created) VALUES (?, ?, ?)", (name, role, time.time()))
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} exists already: `podium serve users list` shows them") from None
        self.audit(actor, "user.add", name, {"role": role})
        return self.user(name)

    def user(self, name: str) -> User:
        rows = self._sql("SELECT id, name, role FROM users WHERE name = ?", (name,))
        if not rows:
            raise UserError(f"no user {one_line(name, 70)!r}: `podium serve users list` shows them")
        return User(rows[0]["id"], rows[0]["name"], rows[0]["role"])

    def users(self) -> list[dict]:
        rows = self._sql("SELECT u.id, u.name, u.role, u.created, COUNT(t.id) AS tokens FROM users u "
                         "LEFT JOIN tokens t ON t.user_id = u.id AND t.revoked IS NULL GROUP BY u.id ORDER BY u.name")
        return [dict(r) for r in rows]

    def remove(self, name: str, actor: str = "cli") -> None:
        user = self.user(name)
        with self._lock:  # the last-admin check and the delete in one transaction
            self._db.execute("BEGIN IMMEDIATE")
            try:
                admins = self._db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]
                if user.role == "admin" and admins <= 1:
                    raise UserError(f"{name!r} is the last admin: add another admin before removing this one")
                self._db.execute("DELETE FROM users WHERE id = ?", (user.id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.audit(actor, "user.remove", name, {"role": user.role})

    # tokens
    def create_token(self, name: str, actor: str = "cli", chosen: Optional[str] = None) -> str:
        """A new token for user `name`: returned once, only its hash kept. `chosen`: a token the
        admin gave (--admin-token) instead of a random one."""
        user = self.user(name)
        lookup = None if chosen else secrets.token_hex(6)
        token = chosen or f"pod_{lookup}_{secrets.token_urlsafe(24)}"
        salt = secrets.token_bytes(16)
        secret = chosen or TOKEN.match(token).group(2)
        self._sql("INSERT INTO tokens (user_id, lookup, salt, hash, created) VALUES (?, ?, ?, ?, ?)",
                  (user.id, lookup, salt, _scrypt(secret, salt), time.time()))
        self.audit(actor, "token.create", name, {"token": lookup or "chosen"})
        return token

    def tokens(self, name: Optional[str] = None) -> list[dict]:
        query = ("SELECT t.id, u.name, t.lookup, t.created, t.revoked FROM tokens t JOIN users u ON u.id = t.user_id")
        rows = self._sql(query + " WHERE u.name = ? ORDER BY t.id" if name else query + " ORDER BY t.id",
                         (name,) if name else ())
        return [{**dict(r), "token": f"pod_{r['lookup']}_…" if r["lookup"] else "(chosen at start-up)"} for r in rows]

    def revoke(self, which: str, actor: str = "cli") -> int:
        """Revoke a token by its `pod_<lookup>` prefix (or the whole token), or every token of a
        user by the user's name; how many were revoked."""
        match = re.match(r"^pod_([0-9a-f]{12})", which)
        if match:
            rows = self._sql("UPDATE tokens SET revoked = ? WHERE lookup = ? AND revoked IS NULL RETURNING id",
                             (time.time(), match.group(1)))
        else:
            user = self.user(which)
            rows = self._sql("UPDATE tokens SET revoked = ? WHERE user_id = ? AND revoked IS NULL RETURNING id",
                             (time.time(), user.id))
        if not rows:
            raise UserError(f"no token to revoke for {one_line(which, 40)!r} (already revoked, or unknown: "
                            "`podium serve tokens list` shows them)")
        self._sql(f"DELETE FROM sessions WHERE token_id IN ({','.join('?' * len(rows))})", [r["id"] for r in rows])
        self.audit(actor, "token.revoke", which[:17], {"count": len(rows)})
        return len(rows)

    def authenticate(self, token: str) -> Optional[User]:
        """The user a token is of, or None (unknown, revoked, its user removed)."""
        known = self._known.get(_digest(token))
        if known is not None:
            user = self._token_user("t.id = ?", (known,))
            if user is None:
                self._known.pop(_digest(token), None)
            return user
        with self._hashing:  # one scrypt at a time: 16 MiB each, and a first burst of requests waits for one
            known = self._known.get(_digest(token))
            if known is not None:
                return self._token_user("t.id = ?", (known,))
            return self._verify(token)

    def _verify(self, token: str) -> Optional[User]:
        match = TOKEN.match(token)
        tries = [("t.lookup = ?", (match.group(1),), match.group(2))] if match else []
        tries.append(("t.lookup IS NULL", (), token))  # the tokens chosen at start-up (few)
        for where, params, secret in tries:
            rows = self._sql(f"SELECT t.id, t.salt, t.hash FROM tokens t WHERE {where} AND t.revoked IS NULL", params)
            for row in rows:
                if hmac.compare_digest(_scrypt(secret, row["salt"]), row["hash"]):
                    self._known[_digest(token)] = row["id"]
                    return self._token_user("t.id = ?", (row["id"],))
        return None

    def _token_user(self, where: str, params) -> Optional[User]:
        rows = self._sql("SELECT u.id, u.name, u.role, t.id AS token_id FROM tokens t JOIN users u ON "
                         f"u.id = t.user_id WHERE {where} AND t.revoked IS NULL", params)
        return User(rows[0]["id"], rows[0]["name"], rows[0]["role"], rows[0]["token_id"]) if rows else None

    # sessions (the page's cookie)
    def open_session(self, user: User, seconds: float) -> str:
        value = secrets.token_urlsafe(32)
        now = time.time()
        self._sql("DELETE FROM sessions WHERE expires < ?", (now,))
        self._sql("INSERT INTO sessions (digest, token_id, created, expires) VALUES (?, ?, ?, ?)",
                  (_digest(value), user.token_id, now, now + seconds))
        return value

    def session(self, value: str) -> tuple[Optional[User], bool]:
        """(the user, False) for a live session; (None, True) for an expired one; (None, False)
        for one that is unknown, revoked or signed out."""
        rows = self._sql("SELECT token_id, expires FROM sessions WHERE digest = ?", (_digest(value),))
        if not rows:
            return None, False
        if rows[0]["expires"] < time.time():
            return None, True
        if rows[0]["token_id"] is None:
            return User(0, "admin", "admin"), False
        return self._token_user("t.id = ?", (rows[0]["token_id"],)), False

    def close_session(self, value: str) -> None:
        self._sql("DELETE FROM sessions WHERE digest = ?", (_digest(value),))

    # usage (quotas)
    def record(self, user_id: int, uploaded: int = 0, rendered_s: float = 0.0) -> None:
        if uploaded or rendered_s:
            self._sql("INSERT INTO usage (user_id, at, uploaded, rendered_s) VALUES (?, ?, ?, ?)",
                      (user_id, time.time(), uploaded, rendered_s))

    def used(self, user_id: int, since: Optional[float] = None) -> dict:
        """{uploaded, rendered_s, oldest}: the last day's use (oldest: its first record's time)."""
        since = time.time() - DAY if since is None else since
        row = self._sql("SELECT COALESCE(SUM(uploaded), 0) AS uploaded, COALESCE(SUM(rendered_s), 0) AS rendered_s, "
                        "MIN(at) AS oldest FROM usage WHERE user_id = ? AND at >= ?", (user_id, since))[0]
        return dict(row)

    # audit
    def audit(self, actor: str, action: str, target: Optional[str], detail: Optional[dict] = None) -> None:
        self._sql("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                  (time.time(), actor, action, target, json.dumps(detail or {})))

    def audit_rows(self, after: int = 0, limit: int = -1) -> Iterator[dict]:
        for row in self._sql("SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?", (after, limit)):
            yield {**dict(row), "detail": json.loads(row["detail"])}
