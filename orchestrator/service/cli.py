"""The `podium serve` command: its options, and starting the HTTP server (uvicorn)."""
from __future__ import annotations

import argparse
import errno
import ipaddress
import math
import socket
import sys
from pathlib import Path

from orchestrator.options import servers
from orchestrator.render.outputs import OutputError

DEFAULT_PORT = 8000
MIN_TOKEN = 16  # characters: a token a network can guess is no token
EPILOG = """API (its OpenAPI schema: /openapi.json):
  POST   /api/jobs                JSON {"mode": "direct", "text": "...", "preset": "draft",
                                  "voice": "...", "options": {"size": "1280x720", ...}}, or
                                  {"mode": "guided", "topic": "..."}; or the same as a
                                  multipart form (options as a JSON string) with the files
                                  image and voice_ref  ->  201 {"id": ..., "state": "queued"}
  GET    /api/jobs[?state=]       jobs, newest first
  GET    /api/jobs/ID             state (queued running done failed cancelled), progress 0-1,
                                  segments, stages, eta_s, error
  GET    /api/jobs/ID/video       the MP4, once done (and /subtitles, the .srt; /subtitles?format=ass, the .ass)
  DELETE /api/jobs/ID             a queued or running job: cancelled (202); a finished one:
                                  deleted with its files (204)
  GET    /metrics                 Prometheus (Grafana: scripts/grafana/podium.json)

examples:
  podium serve --data-dir ~/podium-jobs --workers 2
  PODIUM_TOKEN=$(openssl rand -hex 16) podium serve --host 0.0.0.0 --server http://gpu-box:8188
  podium serve --allowed-host podium.example.org     # behind a reverse proxy of that name

a server for a team (each user sees only their own jobs; admins see all):
  podium serve --host 0.0.0.0 --admin-token "$(openssl rand -hex 16)"   # the first admin
  podium serve users add ana --role member        # admin, member, viewer, or worker
  podium serve tokens create ana                  # shown once; revoke: tokens revoke pod_…
  podium serve --limit member.jobs_at_once=3 --limit member.render_minutes_per_day=60
  podium serve audit --json                       # who created, cancelled, deleted what
"""


def add_parsers(commands) -> None:
    serve = commands.add_parser(
        "serve", help="run Podium as a service: HTTP API, web page, job queue, /metrics",
        description="Serve the job API (/api/jobs, schema at /openapi.json), the web page (/) and "
                    "Prometheus metrics (/metrics). Jobs are kept in the data folder (SQLite) and "
                    "survive a restart; each renders as `podium generate` does, in-process or on "
                    "the ComfyUI servers given.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1, this machine only); any "
                            "other address needs --token")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                       help="jobs, their files and the segment cache (default: the user data "
                            "folder, ~/.local/share/podium/serve on Linux)")
    serve.add_argument("--token", default=None,
                       help="clients must send `Authorization: Bearer TOKEN` (default $PODIUM_TOKEN, "
                            "which other users cannot see in the process list)")
    serve.add_argument("--admin-token", default=None, metavar="TOKEN",
                       help="with no users yet: the first admin (user `admin`) signs in with this "
                            "token; off loopback without it or --token, a terminal asks for one")
    serve.add_argument("--limit", action="append", default=[], metavar="ROLE.NAME=VALUE",
                       help="a quota per role (member, viewer, admin, worker): jobs_at_once, "
                            "render_minutes_per_day, upload_mb_per_day, requests_per_minute; "
                            "VALUE none: no limit (repeat)")
    serve.add_argument("--workers", type=_workers, default=1,
                       help="jobs rendered at the same time (default 1)")
    serve.add_argument("--server", action="append", metavar="URL",
                       help="a ComfyUI server to render on (repeat for several); none: in-process")
    serve.add_argument("--config", metavar="FILE", help="YAML with `servers: [URL, ...]`")
    serve.add_argument("--ollama-host", default=None,
                       metavar="URL", help="Ollama server for guided jobs (default $OLLAMA_HOST or "
                                           "http://127.0.0.1:11434)")
    serve.add_argument("--max-upload-mb", type=_megabytes("--max-upload-mb"), default=20.0, metavar="MB",
                       help="largest portrait or voice reference taken (default 20)")
    serve.add_argument("--max-deck-mb", type=_megabytes("--max-deck-mb"), default=100.0, metavar="MB",
                       help="largest slide deck (PPTX, PDF) taken (default 100)")
    serve.add_argument("--max-output-mb", type=_megabytes("--max-output-mb"), default=4000.0, metavar="MB",
                       help="with --broker: the largest video a worker may upload (default 4000)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a Host name browsers may reach this server by, besides the address it "
                            "listens on and the loopback names (repeat; '*': any, e.g. behind a "
                            "proxy that checks it)")
    serve.add_argument("--broker", metavar="redis://HOST:6379/0", default=None,
                       help="send jobs through Redis to `podium worker` processes (on any machine) "
                            "instead of rendering them here")
    serve.add_argument("--public-url", metavar="URL", default=None,
                       help="with --broker: the address workers reach this server at (default "
                            "http://HOST:PORT; a worker's own --api wins)")
    for flag, default in (("--reconcile-every", 30.0), ("--stale-after", 300.0), ("--store-timeout", 30.0)):
        serve.add_argument(flag, type=_positive(flag), default=default, help=argparse.SUPPRESS)  # tests, benches
    serve.set_defaults(service_command=serve_command)
    from orchestrator.service.users_cli import add_parsers as add_user_parsers

    add_user_parsers(serve)
    _add_worker_parser(commands)


def _add_worker_parser(commands) -> None:
    worker = commands.add_parser(
        "worker", help="render jobs of a `podium serve --broker` on this machine",
        description="Take jobs from the broker one at a time and render each as `podium generate` "
                    "does (in-process, or on the ComfyUI servers given). Inputs come from the "
                    "server's API and the video goes back to it, so no disk is shared with the "
                    "server. A worker killed mid-job has its job rendered by another once its "
                    "heartbeat is --heartbeat-timeout old; it resumes from the segment cache "
                    "when the two share --cache-dir (workers on one machine do by default; on "
                    "several machines, mount one folder for them all).")
    worker.add_argument("--broker", required=True, metavar="redis://HOST:6379/0",
                        help="the Redis URL `podium serve --broker` was given")
    worker.add_argument("--api", metavar="URL", default=None,
                        help="the server's address (default: the one it sends with each job)")
    worker.add_argument("--token", default=None,
                        help="the server's --token (default $PODIUM_TOKEN)")
    worker.add_argument("--name", default=None, help="how the server names this worker (default HOST:PID)")
    worker.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="finished segments, what a retried job resumes from (default "
                             "$PODIUM_CACHE_DIR or the user cache folder)")
    worker.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="where a job's inputs and outputs stay while it renders (default: "
                             "the user data folder, ~/.local/share/podium/worker on Linux)")
    worker.add_argument("--server", action="append", metavar="URL",
                        help="a ComfyUI server to render on (repeat for several); none: in-process")
    worker.add_argument("--config", metavar="FILE", help="YAML with `servers: [URL, ...]`")
    worker.add_argument("--ollama-host", default=None,
                        metavar="URL", help="Ollama server for guided jobs, as this machine reaches it "
                                            "(default $OLLAMA_HOST or http://127.0.0.1:11434)")
    worker.add_argument("--heartbeat-timeout", type=_positive("--heartbeat-timeout"), default=60.0,
                        metavar="SECONDS", help="a worker silent this long is taken for dead and "
                        "its job given to another (default 60)")
    worker.add_argument("--maintenance-chance", type=int, default=10_000, metavar="N",
                        help=argparse.SUPPRESS)  # of a million broker calls; tests: 1000000 (each)
    worker.set_defaults(service_command=worker_command)


def _positive(option: str):
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} takes seconds, got {value!r}") from None
        if not 0 < seconds <= 86400:
            raise argparse.ArgumentTypeError(f"{option} must be more than 0 and at most 86400 seconds")
        return seconds
    return parse


def _megabytes(option: str):
    def parse(value: str) -> float:
        try:
            megabytes = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} takes megabytes, got {value!r}") from None
        if not (math.isfinite(megabytes) and 0 < megabytes <= 1e6):
            raise argparse.ArgumentTypeError(f"{option} must be a number of megabytes above 0 and at "
                                             f"most 1000000, got {value!r}")
        return megabytes
    return parse


def worker_command(args) -> int:
    from orchestrator.service.environment import fill_from_environment
    from orchestrator.service.worker import run_worker

    fill_from_environment(args)
    args.server = servers(args.server, args.config)
    return run_worker(args)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 1 to 65535, got {port}")
    return port


def _workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers takes a whole number, got {value!r}") from None
    if not 1 <= workers <= 64:
        raise argparse.ArgumentTypeError(f"--workers must be from 1 to 64, got {workers}")
    return workers


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def serve_command(args) -> int:
    from orchestrator.service.environment import fill_from_environment

    fill_from_environment(args)
    data_dir = (args.data_dir or _default_data_dir()).expanduser().absolute()
    if args.serve_action:
        from orchestrator.service.users_cli import manage

        return manage(args, data_dir)
    limits = _limits(args.limit)
    off_loopback = not is_loopback(args.host)
    if off_loopback and (args.token or not (args.admin_token or _has_users(data_dir) or sys.stdin.isatty())) \
            and (not args.token or len(args.token.strip()) < MIN_TOKEN):
        import secrets

        given = ("give a --token" if not args.token else f"the token is shorter than {MIN_TOKEN} characters: give one")
        raise OutputError(f"--host {args.host} lets other machines in: {given} (or set PODIUM_TOKEN) "
                          f"that clients must send, e.g. {secrets.token_urlsafe(24)}, or --admin-token and "
                          "users (podium serve users add), or listen on 127.0.0.1")
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise OutputError(f"podium serve needs {err.name}: install the serve extra "
                          "(pip install -e '.[serve]'; scripts/setup.sh does)") from None
    from orchestrator.service.app import Settings, create_app

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot use the data folder {data_dir}: {err.strerror or err}") from None
    if args.broker:
        from orchestrator.service.broker import make_broker

        make_broker(args.broker).close()  # a wrong URL or a Redis that is down: said now, in one line
    lock = _lock(data_dir)  # noqa: F841 - held while this process serves
    from orchestrator.service.store import JobStore

    JobStore(data_dir / "jobs.sqlite3").close()  # a database it cannot use: said here, in one line
    from orchestrator.service.users_cli import first_admin

    first_admin(data_dir, args.admin_token, needed=off_loopback and not args.token)
    if off_loopback and not args.token and not _has_users(data_dir):
        raise OutputError(f"--host {args.host} lets other machines in: give --admin-token (or --token)")
    settings = Settings(data_dir=data_dir, host=args.host, port=args.port, token=args.token,
                        workers=args.workers, servers=servers(args.server, args.config),
                        ollama_host=args.ollama_host, max_upload_mb=args.max_upload_mb,
                        max_deck_mb=args.max_deck_mb,
                        broker=args.broker, public_url=args.public_url, allowed_hosts=args.allowed_host,
                        max_output_mb=args.max_output_mb, reconcile_s=args.reconcile_every,
                        stale_s=args.stale_after, store_timeout_s=args.store_timeout, limits=limits)
    _check_port(args.host, args.port)

    where = f"[{args.host}]" if ":" in args.host else args.host
    how = ('ComfyUI servers: ' + ', '.join(settings.servers) if settings.servers else 'rendering in-process')
    if args.broker:
        how = f"jobs to `podium worker` processes through {args.broker}"
    print(f"podium serve: http://{where}:{args.port}/ (data: {data_dir}; {how})",
          file=sys.stderr, flush=True)
    try:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info",
                    timeout_graceful_shutdown=10)
    except KeyboardInterrupt:  # the signal came between uvicorn's own handling
        pass
    return 0


def _limits(given: list[str]):
    from orchestrator.service.quotas import DEFAULT_LIMITS, parse_limit

    limits = dict(DEFAULT_LIMITS)
    for text in given:
        try:
            limits = parse_limit(text, limits)
        except ValueError as err:
            raise OutputError(f"--limit {err}") from None
    return limits


def _has_users(data_dir: Path) -> bool:
    path = data_dir / "users.sqlite3"
    if not path.is_file():
        return False
    from orchestrator.service.users import UserStore

    store = UserStore(path)
    try:
        return store.any_users()
    finally:
        store.close()


def _check_port(host: str, port: int) -> None:
    """A port another program holds (or one this user may not use), said in one line before
    uvicorn would log its traceback-like lines and exit 3. A port taken in the moment between
    this check and uvicorn's own bind is still uvicorn's to report."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host.strip("[]"), port))
    except OSError as err:
        why = "another program listens there" if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
        raise OutputError(f"cannot listen on {host} port {port}: {why}; stop it, or give another "
                          "--port") from None


def _lock(data_dir: Path):
    """One server per data folder: a second would re-queue the first one's running jobs."""
    import fcntl

    handle = open(data_dir / "serve.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise OutputError(f"another podium serve uses {data_dir}: stop it, or give this one "
                          "another --data-dir") from None
    return handle


def _default_data_dir() -> Path:
    import platformdirs

    return platformdirs.user_data_path("podium") / "serve"
