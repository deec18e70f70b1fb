"""Who may talk to the server from a browser: the Host it is asked by, and where a request that
changes something comes from.

A page on another site can make a browser send requests to a server on this machine: a plain
HTML form posts without a CORS preflight, and a DNS-rebinding page (a name of the attacker's that
now resolves to 127.0.0.1) reads answers as if it were same-origin. So:
  - the Host header must be a name this server is served by (loopback names; the address it
    listens on, or this machine's names and addresses when it listens on all; --allowed-host);
  - a POST, PUT, PATCH or DELETE whose Origin is another site, or whose Sec-Fetch-Site says
    cross-site, is refused;
  - without a token, a form post (what an HTML form can send) is taken only from this server's
    own page: Origin this server, or Sec-Fetch-Site same-origin.
Programs (curl, requests, `podium worker`) send no Origin and no Sec-Fetch-Site; JSON from them
is taken as before, and a form post that carries an Authorization header (a page on another site
cannot add one without a preflight this server does not answer).
A token in the query string is refused on every path: URLs end up in logs and browser history.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from typing import Iterable, Optional
from urllib.parse import parse_qsl, urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "localhost.localdomain")
WILDCARDS = ("0.0.0.0", "::", "")
CHANGING = ("POST", "PUT", "PATCH", "DELETE")
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded", "text/plain")
TOKEN_PARAMS = ("token", "access_token", "api_key", "apikey", "auth", "session", "podium_token")


def served_names(host: str, extra: Iterable[str] = (), public_url: Optional[str] = None) -> Optional[set[str]]:
    """The host names requests may name; None: any ('*' given)."""
    extra = [name.strip().lower() for name in extra if name.strip()]
    if "*" in extra:
        return None
    names = {*LOOPBACK_NAMES, *extra, host.strip("[]").lower()}
    if public_url:
        names.add((urlsplit(public_url).hostname or "").lower())
    if host.strip("[]") in WILDCARDS:
        names |= _machine_names()
    return {_bare(name) for name in names if name and name not in WILDCARDS}


def _machine_names() -> set[str]:
    """This machine's names and interface addresses: what others reach a server on all of them by."""
    import psutil

    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                names.add(address.address.split("%")[0].lower())
    return names


def _bare(name: str) -> str:
    """A name or address as compared: lower case, an IPv6 address without brackets, normalised."""
    name = name.strip().strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def host_of(value: str) -> str:
    """The host part of a Host header value (`name:port`, `[v6]:port`)."""
    value = value.strip()
    if value.startswith("["):
        return _bare(value[1:value.find("]")] if "]" in value else value)
    return _bare(value.rsplit(":", 1)[0] if value.count(":") == 1 else value)


class BrowserGuard:
    """ASGI middleware: the checks above, each refusal one JSON line naming the header."""

    def __init__(self, app, names: Optional[set[str]], token: bool):
        self.app, self.names, self.token = app, names, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self.problem(scope["method"], headers) or _token_in_query(scope.get("query_string", b""))
        if problem is None:
            return await self.app(scope, receive, send)
        status, field, message = problem
        body = json.dumps({"detail": f"{field}: {message}", "field": field}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def problem(self, method: str, headers: dict[str, str]) -> Optional[tuple[int, str, str]]:
        host = headers.get("host", "")
        if self.names is not None and host_of(host) not in self.names:
            return (421, "Host", f"{host[:100]!r} is not a name this server is served by "
                                 "(start it with --allowed-host NAME to add one)")
        if method not in CHANGING:
            return None
        origin, fetch_site = headers.get("origin"), headers.get("sec-fetch-site", "").lower()
        same = origin is not None and _same_origin(origin, host)
        if origin is not None and not same:
            return (403, "Origin", f"{origin[:100]!r} is another site: requests that change jobs are "
                                   "taken from this server's page or from programs, not from other pages")
        if fetch_site in ("cross-site", "same-site") and not same:
            return (403, "Sec-Fetch-Site", "the request came from another site's page")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in FORMS and not (self.token or "authorization" in headers) and not (same or fetch_site == "same-origin"):
            return (403, "Origin", "a form post is taken from this server's own page (Origin this "
                                   "server) or with the server's token; programs: send JSON, or an "
                                   "Origin header naming this server")
        return None


def _token_in_query(query: bytes) -> Optional[tuple[int, str, str]]:
    names = {name.lower() for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
    if names & set(TOKEN_PARAMS):
        return (400, "token", "a token in the URL is refused (URLs end up in logs and browser history): "
                              "send it as `Authorization: Bearer TOKEN`, or sign in on the page")
    return None


def _same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()
