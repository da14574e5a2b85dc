"""dbkeeper serve: the dashboard, a read-only web page of the store (actions only with --allow-actions)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from dbkeeper.cli.common import (
    add_json,
    add_store,
    add_verify_key,
    drill_log_path,
    emit_json,
    load_config,
    open_repo_for,
    store_url,
)
from dbkeeper.errors import UsageError
from dbkeeper.status import DEFAULT_MAX_AGE
from dbkeeper.units import parse_duration


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the dashboard: every source's state, backups, drills and retention plan as web pages",
        description="Serve server-rendered pages of the store: an overview of every source (OK, WARNING or CRITICAL"
        " as `dbkeeper status` says, the last good backup and drill), a page per source (size, duration and"
        " table growth plots, the backups, the drill log, the retention plan) and per backup (manifest, checks,"
        " row counts, the commands that verify and restore it), /metrics (Prometheus) and /healthz. Read-only"
        " unless --allow-actions. Listens on 127.0.0.1:8090; any address other machines reach requires"
        " credentials from --auth-file or DBKEEPER_WEB_AUTH (a token, or user:password). See docs/DASHBOARD.md.",
    )
    add_store(p)
    add_verify_key(p)
    p.add_argument(
        "--listen", metavar="HOST:PORT", default="127.0.0.1:8090", help="where to listen (default 127.0.0.1:8090)"
    )
    p.add_argument(
        "--allow-actions",
        action="store_true",
        help="show buttons that run a backup, a verify or a drill now (never a restore)",
    )
    p.add_argument(
        "--auth-file",
        metavar="FILE",
        help="a file only its owner can read holding one line: a token, or user:password (env DBKEEPER_WEB_AUTH)",
    )
    p.add_argument(
        "--root-path",
        metavar="PREFIX",
        default="",
        help="the path prefix a reverse proxy serves the dashboard under, e.g. /dbkeeper (or its X-Forwarded-Prefix)",
    )
    p.add_argument("--max-age", metavar="AGE", help=f"as status --max-age (default {DEFAULT_MAX_AGE})")
    p.add_argument(
        "--drill-log",
        metavar="FILE",
        help="the drill log (default: config [drill] log, else DR_DRILL_LOG.md in the state directory)",
    )
    p.add_argument(
        "--refresh",
        metavar="AGE",
        default="30s",
        help="read the store again in the background when the last read is older than this (default 30s)",
    )
    p.add_argument("--threads", type=int, default=4, metavar="N", help="requests served at once (default 4)")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from waitress.server import create_server

    from dbkeeper.web.app import Settings, create_app
    from dbkeeper.web.auth import PrefixMiddleware, clean_prefix, load_credentials, parse_listen, require_safe

    cfg = load_config(args)
    listen = parse_listen(args.listen)
    credentials = load_credentials(args.auth_file)
    require_safe(listen, credentials)
    root_path = clean_prefix(args.root_path)
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, not {args.threads}")
    settings = Settings(
        cfg=cfg,
        repo=open_repo_for(store_url(args, cfg), cfg, args),
        drill_log=args.drill_log or drill_log_path(cfg),
        max_age=parse_duration(args.max_age or DEFAULT_MAX_AGE, "--max-age"),
        refresh=parse_duration(args.refresh, "--refresh", allow_zero=True),
        allow_actions=args.allow_actions,
        credentials=credentials,
    )
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="dbkeeper: %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is noise at this size
    app = create_app(settings)
    app.extensions["dbkeeper"]["snapshots"].start()
    try:
        server = create_server(
            PrefixMiddleware(app.wsgi_app, root_path),
            host=listen.host,
            port=listen.port,
            threads=args.threads,
            ident="dbkeeper",
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.listen}: {exc.strerror or exc}", "pick another --listen port"
        ) from exc

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.close, daemon=True).start()
        raise SystemExit(0)

    # Before it says where it listens: whoever reads that may stop it at once (systemd, a supervisor, a test).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    url = f"{listen.url}{root_path}/"
    mode = "actions on" if args.allow_actions else "read-only"
    if args.json:
        emit_json({"ok": True, "url": url, "store": settings.repo.url, "actions": args.allow_actions})
    else:
        print(f"dbkeeper: serving {settings.repo.url} on {url} ({mode}; Ctrl-C stops)", flush=True)
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0
