"""Jobs persisted in SQLite, so a job survives a restart of the server.

One row per job: its state, progress and the detail the page shows (stages, segments), the
request as submitted and where its outputs are. The schema carries a version
(`PRAGMA user_version`); a file written by a newer Podium is refused rather than misread.
Every call takes the one lock: SQLite is shared by the HTTP threads and the workers.

Each job has an owner (a user id; 0: the server's own admin). Who may see a job is a filter in
the queries themselves (`seen_by`: the owner, or a user it is shared with; None: everyone), so
no route can forget it: another user's job is simply not found.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from orchestrator.service.db import open_db
from podium.errors import PodiumError, UsageError, one_line

SCHEMA_VERSION = 2  # 2: jobs.owner, shares
STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")  # a job in these states is re-queued when the server starts
FINISHED = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress REAL NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '{}',
    eta_s REAL,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL,
    outputs TEXT NOT NULL DEFAULT '{}',
    owner INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created);
"""
_SCHEMA_2 = """
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, created);
CREATE TABLE IF NOT EXISTS shares (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, user_id)
);
"""
_JSON_COLUMNS = ("detail", "request", "outputs")
_COLUMNS = ("state", "progress", "detail", "eta_s", "error", "started", "finished", "attempts",
            "request", "outputs")


class StoreError(UsageError):
    """The job database cannot be used (a newer schema, not a database)."""


class StoreUnavailable(PodiumError):
    """A read or write of the job database failed now (disk full or read-only, I/O error,
    locked by another program): the API answers 503, a worker loop waits and tries again."""


@dataclass
class Job:
    id: str
    state: str
    request: dict
    created: float
    updated: float
    progress: float = 0.0
    detail: dict = field(default_factory=dict)  # {"stages": {...}, "segments": [...], ...}
    eta_s: Optional[float] = None
    error: Optional[str] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    attempts: int = 0  # how many times a worker started it (a restart or a retry adds one)
    outputs: dict = field(default_factory=dict)  # {"video": "video.mp4", ...} inside its folder
    owner: int = 0  # the user's id (users.py); 0: the server's own admin

    def as_dict(self) -> dict:
        return asdict(self)


def new_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    """The jobs of one data folder (`DATA/jobs.sqlite3`)."""

    def __init__(self, path: Path, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_db(self.path, what="job", version=SCHEMA_VERSION, schema=_SCHEMA, error=StoreError,
                           migrate=_migrate, hint=", or use another --data-dir", busy_timeout_s=busy_timeout_s)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, request: dict, job_id: Optional[str] = None, owner: int = 0) -> Job:
        now = time.time()
        job = Job(id=job_id or new_id(), state="queued", request=request, created=now, updated=now, owner=owner)
        self._sql("INSERT INTO jobs (id, state, created, updated, request, owner) VALUES (?, ?, ?, ?, ?, ?)",
                  (job.id, job.state, now, now, json.dumps(request), owner))
        return job

    def get(self, job_id: str, seen_by: Optional[int] = None) -> Optional[Job]:
        """The job, if `seen_by` (a user id; None: anyone) may see it."""
        where, params = _seen(seen_by)
        rows = self._sql(f"SELECT * FROM jobs WHERE id = ? AND {where}", (job_id, *params)).fetchall()
        return _job(rows[0]) if rows else None

    def list(self, state: Optional[str] = None, limit: int = 100, offset: int = 0,
             seen_by: Optional[int] = None) -> list[Job]:
        """Newest first, those `seen_by` may see."""
        where, params = _seen(seen_by)
        query = f"SELECT * FROM jobs WHERE {where}"
        if state:
            query, params = query + " AND state = ?", [*params, state]
        query += " ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?"
        return [_job(r) for r in self._sql(query, (*params, limit, offset)).fetchall()]

    def share(self, job_id: str, user_id: int, shared: bool = True) -> None:
        if shared:
            self._sql("INSERT OR IGNORE INTO shares (job_id, user_id) VALUES (?, ?)", (job_id, user_id))
        else:
            self._sql("DELETE FROM shares WHERE job_id = ? AND user_id = ?", (job_id, user_id))

    def active_of(self, owner: int) -> int:
        """Queued and running jobs `owner` has (its quota of jobs at once)."""
        return self._sql("SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN ('queued', 'running')",
                         (owner,)).fetchall()[0][0]

    def active(self) -> list[Job]:
        """Queued and running jobs, oldest first: what a starting server re-queues."""
        rows = self._sql("SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created, rowid")
        return [_job(r) for r in rows.fetchall()]

    def counts(self, seen_by: Optional[int] = None) -> dict[str, int]:
        """Jobs by state (those `seen_by` may see), every state named (0 when none)."""
        where, params = _seen(seen_by)
        rows = self._sql(f"SELECT state, COUNT(*) FROM jobs WHERE {where} GROUP BY state", params).fetchall()
        found = {state: 0 for state in STATES}
        found.update({state: n for state, n in rows})
        return found

    def update(self, job_id: str, *, only_if: Optional[tuple[str, ...]] = None, **fields: Any) -> bool:
        """Set `fields` (columns of Job); with `only_if`, only while the job is in one of those
        states (so a cancel and a finishing worker cannot overwrite each other). True if it did."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise KeyError(f"not job columns: {sorted(unknown)}")
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown state {fields['state']!r}")
        values = [json.dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields) + (", " if fields else "") + "updated = ?"
        query, params = f"UPDATE jobs SET {sets} WHERE id = ?", [*values, time.time(), job_id]
        if only_if:
            query += f" AND state IN ({', '.join('?' for _ in only_if)})"
            params.extend(only_if)
        return self._sql(query, params).rowcount == 1

    def delete(self, job_id: str, seen_by: Optional[int] = None) -> bool:
        where, params = _seen(seen_by, shared=False)
        return self._sql(f"DELETE FROM jobs WHERE id = ? AND {where}", (job_id, *params)).rowcount == 1

    def _sql(self, query: str, params: tuple | list = ()) -> sqlite3.Cursor:
        """One statement under the lock, its rows read before the lock is let go; a database
        that cannot be read or written now is a StoreUnavailable naming the file and why."""
        with self._lock:
            try:
                cursor = self._db.execute(query, params)
                if cursor.description is not None:
                    return _Rows(cursor.fetchall())
                return cursor
            except sqlite3.DatabaseError as err:
                raise StoreUnavailable(f"the job database {self.path.name} cannot be used now "
                                       f"({one_line(str(err), 120)})") from None

    def __iter__(self) -> Iterator[Job]:
        return iter(self.list(limit=-1))


def _migrate(db: sqlite3.Connection, found: int) -> None:
    if found == 1:  # a job database of before users: its jobs are the admin's
        db.execute("ALTER TABLE jobs ADD COLUMN owner INTEGER NOT NULL DEFAULT 0")
    db.executescript(_SCHEMA_2)


def _seen(user_id: Optional[int], shared: bool = True) -> tuple[str, list]:
    """The WHERE clause of the jobs `user_id` may see: its own and (`shared`) those shared with it."""
    if user_id is None:
        return "1 = 1", []
    if not shared:
        return "owner = ?", [user_id]
    return "(owner = ? OR id IN (SELECT job_id FROM shares WHERE user_id = ?))", [user_id, user_id]


class _Rows(list):
    """Rows already fetched, read as a cursor's would be."""

    def fetchall(self) -> list:
        return self


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    for key in _JSON_COLUMNS:
        values[key] = json.loads(values[key])
    return Job(**values)
