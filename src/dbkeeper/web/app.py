"""The dashboard's routes (Flask, server-rendered Jinja templates; served by waitress from ``cli/serve.py``).

Read-only unless ``allow_actions``: then three POST routes run a backup, a verify or a drill, each behind the
CSRF check of ``auth.Csrf``, and answer with a redirect to the page that shows the result (POST, redirect, GET:
a reload does not run the action again). Every response forbids scripts, framing and outside resources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, redirect, render_template, request, url_for

from dbkeeper import __version__, metrics
from dbkeeper.config import Config
from dbkeeper.errors import DbkeeperError, NotFound
from dbkeeper.repo import Repository
from dbkeeper.units import format_duration, human_size
from dbkeeper.web import pages
from dbkeeper.web.actions import Actions
from dbkeeper.web.auth import Credentials, Csrf, same_origin
from dbkeeper.web.snapshot import SnapshotRepository, Snapshots

log = logging.getLogger("dbkeeper.web")
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Settings:
    cfg: Config
    repo: Repository
    drill_log: str
    max_age: timedelta
    refresh: timedelta = timedelta(seconds=30)
    allow_actions: bool = False
    credentials: Credentials | None = None
    secure_cookie: bool = False


def create_app(settings: Settings, snapshots: Snapshots | None = None) -> Flask:
    app = Flask("dbkeeper.web", template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    data_dir = Path(settings.cfg.pitr.data_dir) if settings.cfg.pitr.data_dir else None
    snaps = snapshots or Snapshots(
        settings.repo, settings.refresh, lambda snap: pages.warm(snap, settings.cfg), data_dir=data_dir
    )
    actions = Actions(settings.cfg, settings.repo, settings.drill_log)
    csrf = Csrf()
    app.extensions["dbkeeper"] = {"snapshots": snaps, "actions": actions, "settings": settings}

    @app.before_request
    def _guard() -> Response | None:
        if request.endpoint in ("healthz",):
            return None
        if settings.credentials is not None and not settings.credentials.accepts(request.headers.get("Authorization")):
            return Response(
                "authentication required\n",
                401,
                {"WWW-Authenticate": 'Basic realm="dbkeeper", charset="UTF-8"', "Content-Type": "text/plain"},
            )
        g.csrf_cookie = request.cookies.get(Csrf.COOKIE) or ""
        g.new_cookie = None
        if len(g.csrf_cookie) < 16:
            g.csrf_cookie = g.new_cookie = Csrf.new_cookie()
        if request.method == "POST":
            if not settings.allow_actions:
                abort(403, "actions are off: start the dashboard with --allow-actions")
            if not same_origin(request.headers.get("Origin"), request.host):
                abort(403, "the request came from another site")
            if g.new_cookie or not csrf.valid(request.cookies.get(Csrf.COOKIE), request.form.get(Csrf.FIELD)):
                abort(403, "the form's CSRF token is missing or does not match: reload the page and try again")
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if getattr(g, "new_cookie", None):
            response.set_cookie(
                Csrf.COOKIE,
                g.new_cookie,
                httponly=True,
                samesite="Strict",
                secure=settings.secure_cookie,
                path=request.script_root or "/",
            )
        return response

    @app.context_processor
    def _common() -> dict[str, Any]:
        snap_error = snaps.error
        return {
            "version": __version__,
            "store": settings.repo.url,
            "allow_actions": settings.allow_actions,
            "csrf_field": Csrf.FIELD,
            "csrf_token": csrf.token(g.csrf_cookie) if getattr(g, "csrf_cookie", "") else "",
            "human_size": human_size,
            "read_error": snap_error,
        }

    def _view() -> tuple[SnapshotRepository, pages.View]:
        snap = snaps.get()
        now = datetime.now(UTC)
        g.snapshot_line = (
            f"store read {format_duration(max(now - snap.taken, timedelta(0)))} ago, in {snap.seconds:.2f} s;"
            f" {len(snap.catalog.entries)} backups"
        )
        view = pages.View(settings.cfg, settings.max_age, settings.drill_log, now)
        return SnapshotRepository(settings.repo, snap), view

    def _shown_action() -> Any:
        wanted = request.args.get("action", "")
        return actions.find(int(wanted)) if wanted.isdigit() else None

    @app.get("/")
    def overview() -> str:
        repo, view = _view()
        return render_template("overview.html", **pages.overview(repo, view), action=_shown_action(), view=view)

    @app.get("/source/<sid>")
    def source(sid: str) -> str:
        repo, view = _view()
        page = request.args.get("page", "1")
        data = pages.source_page(repo, view, sid, int(page) if page.isdigit() else 1)
        return render_template(
            "source.html",
            **data,
            view=view,
            action=_shown_action(),
            history=actions.history(sid),
            configured=actions.configured_source(sid) is not None,
        )

    @app.get("/pitr/<sid>")
    def pitr(sid: str) -> str:
        repo, view = _view()
        return render_template("pitr.html", **pages.pitr_page(repo, view, sid), view=view, action=None)

    @app.get("/backup/<path:name>")
    def backup(name: str) -> str:
        repo, view = _view()
        data = pages.backup_page(repo, view, name)
        return render_template("backup.html", **data, view=view, action=_shown_action(), history=actions.history(name))

    @app.get("/metrics")
    def metrics_text() -> Response:
        repo = _view()[0]
        text = metrics.render(metrics.collect(repo, settings.drill_log, pitr=repo.snapshot.pitr))
        return Response(text, 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    @app.get("/healthz")
    def healthz() -> Response:
        if snaps.error is not None:
            return Response(f"store unreadable: {snaps.error.message}\n", 503, {"Content-Type": "text/plain"})
        return Response("ok\n", 200, {"Content-Type": "text/plain"})

    def _who() -> str:
        user = request.authorization.username if request.authorization else None
        return f"{request.remote_addr}" + (f" ({user})" if user else "")

    def _done(result: Any, endpoint: str, **values: Any) -> Any:
        snaps.refresh()
        return redirect(url_for(endpoint, **values, action=result.id), code=303)

    @app.post("/source/<sid>/backup")
    def run_backup(sid: str) -> Any:
        return _done(actions.backup(sid, _who()), "source", sid=sid)

    @app.post("/source/<sid>/drill")
    def run_drill(sid: str) -> Any:
        return _done(actions.drill(sid, _who()), "source", sid=sid)

    @app.post("/backup/<path:name>/verify")
    def run_verify(name: str) -> Any:
        return _done(actions.verify(name, _who()), "backup", name=name)

    @app.errorhandler(DbkeeperError)
    def _error(exc: DbkeeperError) -> tuple[str, int]:
        code = 404 if isinstance(exc, NotFound) else 500
        if code == 500:
            log.error("%s %s: %s", request.method, request.path, exc.message)
        return render_template("error.html", code=code, message=exc.message, hint=exc.hint), code

    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    def _http_error(exc: Any) -> tuple[str, int]:
        code = int(getattr(exc, "code", 500))
        if code == 403:
            log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote_addr, exc.description)
        return render_template("error.html", code=code, message=exc.description, hint=None), code

    return app
