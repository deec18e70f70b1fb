"""Where Ollama is: a host as the URL Ollama's clients use, and inside ComfyUI only the hosts
the operator allows (a graph comes from anyone who reaches the server)."""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import urllib.parse
from typing import Optional

from ..errors import PodiumError

log = logging.getLogger("podium.ollama")

DEFAULT_HOST = "http://127.0.0.1:11434"

HOSTS_ENV = "PODIUM_OLLAMA_HOSTS"  # inside ComfyUI: the Ollama hosts a graph may use ("*": any)
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_HOSTNAME = re.compile(r"^[A-Za-z0-9._-]+$")
NOT_ALLOWED = ("this ComfyUI server asks only the Ollama hosts its operator allows (by default the "
               f"Ollama on this machine, {DEFAULT_HOST}): leave host at its default, or ask the "
               f"operator to add yours to {HOSTS_ENV}")


def normalize_host(host: str) -> str:
    """The base URL for a host as Ollama's own clients read it: http unless a scheme is given,
    port 11434 unless one is given (80/443 for an explicit http:// / https:// URL), no
    trailing slash. ValueError when it cannot be an Ollama URL."""
    host = (host or "").strip() or DEFAULT_HOST
    if re.search(r"\s", host):
        raise ValueError("whitespace in the host")
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest, port = "http", host, 11434
    else:
        scheme = scheme.lower()
        port = {"http": 80, "https": 443}.get(scheme)
        if port is None:
            raise ValueError(f"scheme {scheme!r}")
    split = urllib.parse.urlsplit(f"{scheme}://{rest}")
    if split.query or split.fragment or "@" in split.netloc:
        raise ValueError("a query, fragment or user name")
    name = split.hostname or "127.0.0.1"
    port = split.port or port  # ValueError for a port that is not a number in range
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        if not _HOSTNAME.match(name):
            raise ValueError(f"host name {name!r}") from None
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}" + (f"/{path}" if path else "")


def display_host(host: str) -> str:
    """The URL the client really uses (with its scheme and port), or what was given."""
    try:
        return normalize_host(host)
    except ValueError:
        return host or DEFAULT_HOST


def check_host(host: str) -> str:
    """The host's base URL (empty: the default), or a PodiumError when it cannot be a URL."""
    try:
        return normalize_host(host)
    except ValueError:
        raise PodiumError(f"the Ollama host {host.strip()!r} is not a URL: give one like "
                          f"{DEFAULT_HOST} (--ollama-host)") from None


def allowed_hosts() -> Optional[frozenset]:
    """The base URLs a graph may send to inside ComfyUI (None: any, `PODIUM_OLLAMA_HOSTS=*`):
    the hosts in $PODIUM_OLLAMA_HOSTS (comma-separated), else Ollama on this machine (and
    $OLLAMA_HOST, where the operator runs it)."""
    raw = os.environ.get(HOSTS_ENV, "").strip()
    if raw == "*":
        return None
    entries = [e.strip() for e in raw.split(",") if e.strip()] if raw else \
        [f"{h}:11434" for h in _LOOPBACK] + [os.environ.get("OLLAMA_HOST", "").strip() or DEFAULT_HOST]
    allowed = set()
    for entry in entries:
        try:
            allowed.add(normalize_host(entry))
        except ValueError:
            log.warning("%s: %r is not an Ollama URL, ignored", HOSTS_ENV, entry)
    return frozenset(allowed)


def confine_host(host: str) -> str:
    """Inside ComfyUI (a graph comes from anyone who reaches the server): the host's URL when
    the operator allows it, else one neutral PodiumError that says nothing of the host."""
    url = check_host(host)
    allowed = allowed_hosts()
    if allowed is not None and url not in allowed:
        raise PodiumError(NOT_ALLOWED)
    return url
