"""Opening one of the service's SQLite files (jobs, users): one place for the connection's
settings and the schema version check, so the two databases cannot drift apart.

A file whose `PRAGMA user_version` is newer than this Podium knows is refused rather than misread;
one that is not a database at all is refused in one line saying what to do.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable, Optional

Migrate = Callable[[sqlite3.Connection, int], None]


def open_db(path: Path, *, what: str, version: int, schema: str, error: type[Exception],
            migrate: Optional[Migrate] = None, hint: str = "", busy_timeout_s: float = 30.0) -> sqlite3.Connection:
    """The connection (shared by threads under the caller's lock, autocommit, rows by name, WAL,
    foreign keys on) with `schema` created and the version set. `migrate(db, found)` runs after
    `schema` for a file of an older `found` version (0: a new file). `what` names the database
    in errors ("job", "users"); `hint` is added to their advice (", or use another --data-dir")."""
    db = None
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
        db.row_factory = sqlite3.Row
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise error(f"{path} was written by a newer Podium ({what} schema {found}, this one knows "
                        f"{version}): upgrade{hint}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(schema)
        if migrate is not None:
            migrate(db, found)
        db.execute(f"PRAGMA user_version = {version}")
        return db
    except sqlite3.DatabaseError as err:
        if db is not None:
            db.close()
        raise error(f"{path} is not a usable {what} database ({err}): move it away{hint}") from None
    except BaseException:
        if db is not None:
            db.close()
        raise
