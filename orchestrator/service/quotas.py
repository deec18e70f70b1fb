"""How much each user may ask of a shared server, per role: jobs queued at once, rendered
minutes and uploaded megabytes a day, requests a minute. Over a limit: 429 with Retry-After.

Limits live in the settings (`podium serve --limit member.jobs_at_once=3`); None: no limit.
Requests a minute are counted in this process (a sliding window per user); the rest from the
stores, so they hold across restarts.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, fields, replace
from typing import Optional

from orchestrator.service.schemas import RequestError


@dataclass(frozen=True)
class Limits:
    jobs_at_once: Optional[int] = None
    render_minutes_per_day: Optional[float] = None
    upload_mb_per_day: Optional[float] = None
    requests_per_minute: Optional[int] = None


DEFAULT_LIMITS = {
    "admin": Limits(),
    "member": Limits(jobs_at_once=5, render_minutes_per_day=240, upload_mb_per_day=1000, requests_per_minute=600),
    "viewer": Limits(jobs_at_once=0, render_minutes_per_day=0, upload_mb_per_day=0, requests_per_minute=600),
    "worker": Limits(),
}


class OverLimit(RequestError):
    """429: `retry_after` seconds until the request may be taken."""

    def __init__(self, field: str, message: str, retry_after: float):
        super().__init__(field, message, 429)
        self.retry_after = max(1, math.ceil(retry_after))


def parse_limit(text: str, limits: dict[str, Limits]) -> dict[str, Limits]:
    """`ROLE.NAME=VALUE` (VALUE `none`: no limit) applied to `limits`; ValueError saying why."""
    key, _, value = text.partition("=")
    role, _, name = key.strip().partition(".")
    names = [f.name for f in fields(Limits)]
    if role not in limits or name not in names:
        raise ValueError(f"{text!r}: give ROLE.NAME=VALUE, ROLE one of {', '.join(limits)}, "
                         f"NAME one of {', '.join(names)}")
    try:
        number = None if value.strip().lower() == "none" else float(value)
    except ValueError:
        raise ValueError(f"{text!r}: the value must be a number or none") from None
    if number is not None and not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{text!r}: the value must be 0 or more")
    if number is not None and name in ("jobs_at_once", "requests_per_minute"):
        number = int(number)
    return {**limits, role: replace(limits[role], **{name: number})}


class RateLimiter:
    """Requests a minute per user id, a sliding window kept in memory (a few bytes a request)."""

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self._seen: dict[int, collections.deque] = {}
        self._lock = threading.Lock()

    def check(self, user_id: int, per_minute: Optional[int]) -> None:
        if per_minute is None:
            return
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(user_id, collections.deque())
            while seen and seen[0] <= now - self.window_s:
                seen.popleft()
            if len(seen) >= per_minute:
                raise OverLimit("requests", f"more than {per_minute} requests a minute: slow down",
                                seen[0] + self.window_s - now)
            seen.append(now)


class FailureLimiter:
    """Failed sign-ins per address: after `most` in `window_s` seconds the address is refused
    (429 with Retry-After, the token not even checked) until its oldest failure ages out, so a
    token cannot be guessed at the speed of the network. Memory is bounded: at most `addresses`
    addresses (the one that failed longest ago forgotten first), at most `most` times each."""

    def __init__(self, most: int = 10, window_s: float = 60.0, addresses: int = 4096):
        self.most, self.window_s, self.addresses = most, window_s, addresses
        self._failed: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            seen = self._failed.get(address)
            while seen and seen[0] <= now - self.window_s:
                seen.popleft()
            if seen is not None and not seen:
                del self._failed[address]
            elif seen is not None and len(seen) >= self.most:
                raise OverLimit("token", f"{self.most} failed sign-ins from this address in a minute: "
                                         "wait, then sign in with a token an admin gave you",
                                seen[0] + self.window_s - now)

    def failed(self, address: str) -> None:
        with self._lock:
            seen = self._failed.pop(address, None) or collections.deque(maxlen=self.most)
            seen.append(time.monotonic())
            self._failed[address] = seen  # the most recent failure last
            while len(self._failed) > self.addresses:
                self._failed.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failed)


def check_submission(limits: Limits, active: int, used: dict, upload_bytes: int) -> None:
    """Refuse a new job over the user's limits (used: UserStore.used)."""
    if limits.jobs_at_once is not None and active >= limits.jobs_at_once:
        if limits.jobs_at_once == 0:
            raise RequestError("role", "this role may not submit jobs", 403)
        raise OverLimit("jobs", f"you have {active} jobs queued or running, the most at once: submit this "
                                "one when one has finished", 30)
    again = (used["oldest"] or time.time()) + 86400 - time.time()
    if limits.render_minutes_per_day is not None and used["rendered_s"] >= limits.render_minutes_per_day * 60:
        raise OverLimit("jobs", f"your {limits.render_minutes_per_day:g} rendered minutes of the last day are "
                                "used up", again)
    check_upload(limits, used, upload_bytes)


def check_upload(limits: Limits, used: dict, upload_bytes: int) -> None:
    """Refuse an upload (a job's, a profile's) past the user's megabytes a day."""
    again = (used["oldest"] or time.time()) + 86400 - time.time()
    if limits.upload_mb_per_day is not None and used["uploaded"] + upload_bytes > limits.upload_mb_per_day * 1e6:
        raise OverLimit("body", f"this upload would pass your {limits.upload_mb_per_day:g} MB of uploads a day",
                        again)
