"""dbkeeper serve, as a user meets it: a real process on a real store (local, S3), looked at in a real chromium.

Every page must render without a console error, a refused resource or a failed request (the Content-Security-
Policy forbids scripts, inline styles and anything from elsewhere, so a violation shows up as a console error);
the plots must hold one mark per good backup in the store; the overview must say what ``dbkeeper status`` says;
an action button must run a real backup; a POST without its CSRF token, and a request without credentials on an
address other machines reach, must be refused.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiving import SOURCE, archiving_cluster
from conftest import _pg15_bindir
from dashboard import Visit, browser, free_port, get, serve
from dbkeeper.repo import catalog
from dbkeeper.storage import open_store
from helpers import backup_at, backup_files, make_sqlite_app, run_dbkeeper
from pitr_harness import PITR_SETTINGS, basebackup, dbk

REPO = Path(__file__).resolve().parent.parent.parent
SCREENSHOT = REPO / "docs" / "img" / "dashboard.png"


def good_backups(store: str, source: str, env: dict[str, str] | None = None) -> list[catalog.Entry]:
    found = catalog.scan(open_store(store), datetime.now(UTC))
    return [e for e in found.entries if e.source_id == source and e.good]


def sqlite_world(tmp_path: Path, *, hours: tuple[int, ...] = (30, 20, 10, 3)) -> Path:
    """Two SQLite sources in the config (app with backups ``hours`` ago, shop with one) and a drill of each."""
    make_sqlite_app(tmp_path / "app.db", users=300, sessions=200)
    make_sqlite_app(tmp_path / "shop.db", users=50, sessions=500)
    (tmp_path / "dbkeeper.toml").write_text(
        'store = "backups"\n'
        '[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n'
        '[[sources]]\nname = "shop"\nurl = "sqlite:///shop.db"\n'
        '[drill]\nlog = "drills.md"\n'
    )
    now = datetime.now(UTC).replace(microsecond=0)
    for h in hours:
        backup_at(str(tmp_path / "app.db"), tmp_path / "backups", now - timedelta(hours=h), name="app")
    backup_at(str(tmp_path / "shop.db"), tmp_path / "backups", now - timedelta(hours=2), name="shop")
    drilled = run_dbkeeper("drill", "--seed", "1", cwd=tmp_path)
    assert drilled.returncode == 0, drilled.stderr
    return tmp_path


def status_states(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    result = run_dbkeeper("status", "--json", *args, cwd=cwd, env=env)
    return {d["database"]: d["state"] for d in json.loads(result.stdout)["databases"]}


def look(page: Any, url: str) -> Visit:
    visit = Visit()
    visit.watch(page)
    page.goto(url)
    return visit


def check_source_page(
    page: Any, url: str, store: str, sid: str, tables: int, env: dict[str, str] | None = None
) -> None:
    visit = look(page, f"{url}/source/{sid}")
    good = good_backups(store, sid, env)
    section = page.locator(f'section.series[data-series="{sid}"]')
    assert section.locator("figure.plot-size svg circle.point").count() == len(good)
    assert section.locator("figure.plot-duration svg rect.bar").count() == len(good)
    assert section.locator("figure.plot-tables svg polyline.line").count() == min(tables, 5)
    # Each mark names its backup: the plots show exactly the backups the store holds.
    tips = section.locator("figure.plot-size svg circle.point title").all_text_contents()
    assert sorted(t.split(":")[0] for t in tips) == sorted(e.name.split("/")[-1] for e in good)
    assert section.locator("table.backups tr.backup").count() == len(good)
    assert section.locator("table.plan tr.decision").count() == len(good)
    assert visit.problems == []


def test_every_page_renders_and_the_plots_show_the_store(tmp_path: Path) -> None:
    world = sqlite_world(tmp_path)
    states = status_states(world)
    with serve(world) as server, browser() as chromium:
        page = chromium.new_page()
        visit = look(page, server.url + "/")
        rows = page.locator("table.overview tr.series")
        assert rows.count() == 2
        for series, state in states.items():
            assert page.locator(f'tr.series[data-series="{series}"] .state').inner_text() == state
        assert "PASS" in page.locator('tr.series[data-series="app"]').inner_text()
        assert visit.problems == []

        check_source_page(page, server.url, str(world / "backups"), "app", tables=3)
        drills = page.locator('section.series[data-series="app"] table.drills tr.drill')
        assert drills.count() == 1 and "PASS" in drills.first.inner_text()

        # Every backup's page: its manifest, its row counts and the commands that verify and restore it.
        for entry in good_backups(str(world / "backups"), "app"):
            visit = look(page, f"{server.url}/backup/{entry.name}")
            assert entry.manifest is not None
            assert page.locator("#verify-command").inner_text() == f"dbkeeper verify {entry.name} --store backups"
            assert page.locator("#restore-command").inner_text().startswith(f"dbkeeper restore {entry.name} sqlite:///")
            assert json.loads(page.locator("pre.manifest").inner_text())["sha256"] == entry.manifest.sha256
            assert page.locator("table.rows tbody tr").count() == len(entry.manifest.row_counts)
            assert visit.problems == []

        # Without JavaScript, the same pages read the same.
        plain = chromium.new_page(java_script_enabled=False)
        look(plain, server.url + "/source/app")
        assert plain.locator("svg circle.point").count() == len(good_backups(str(world / "backups"), "app"))

        # The watch sees what goes wrong: a page that does not exist is a 404 and the console's error.
        visit = look(page, server.url + "/no/such/page")
        assert f"HTTP 404: {server.url}/no/such/page" in visit.problems
        assert any(p.startswith("console error:") for p in visit.problems)
        visit = look(page, server.url + "/backup/app/app_20200101_000000.db.gz")
        assert "no backup app/app_20200101_000000.db.gz" in page.content()


def test_metrics_and_healthz(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    world = sqlite_world(tmp_path, hours=(5, 1))
    written = run_dbkeeper("backup", "app", "--metrics-file", "written.prom", cwd=world)
    assert written.returncode == 0, written.stderr
    with serve(world) as server:
        status, text, headers = get(server.url + "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        # The same numbers the metrics file that backup wrote holds: both come from metrics.collect over the store.
        expected = {f.name: f for f in text_string_to_metric_families((world / "written.prom").read_text())}
        assert set(families) == set(expected)
        for name in ("dbkeeper_backup_size_bytes", "dbkeeper_backup_last_success_timestamp_seconds"):
            assert families[name].samples == expected[name].samples
        assert get(server.url + "/healthz")[:2] == (200, "ok\n")


def test_an_action_button_runs_a_real_backup_a_verify_and_a_drill(tmp_path: Path) -> None:
    world = sqlite_world(tmp_path, hours=(4,))
    before = set(backup_files(world / "backups"))
    with serve(world, "--allow-actions") as server, browser() as chromium:
        page = chromium.new_page()
        visit = look(page, server.url + "/source/app")
        page.click("#backup-now")
        assert page.locator("#action-result").inner_text().startswith("Backup app: OK")
        new = sorted(set(backup_files(world / "backups")) - before)
        assert len(new) == 3 and new[0].startswith("app/app_") and new[0].endswith(".db.gz")  # data, .json, .sha256
        # The page after the action shows it: one more point, and the new backup in the table.
        section = page.locator('section.series[data-series="app"]')
        assert section.locator("svg circle.point").count() == 2
        assert new[0] in section.locator("table.backups").inner_text()

        page.click("#drill-now")
        assert page.locator("#action-result").inner_text().startswith("Drill app: OK")
        assert (world / "drills.md").read_text().count("| app ") == 2

        page.click(f"table.backups a >> text={new[0]}")
        page.click("#verify-now")
        result = page.locator("#action-result").inner_text()
        assert result.startswith(f"Verify {new[0]}: OK") and "OK row counts" in result
        assert visit.problems == []
    log = server.output()
    assert "action backup app by 127.0.0.1: OK" in log and "action drill app by 127.0.0.1: OK" in log


def test_a_post_without_its_csrf_token_is_refused(tmp_path: Path) -> None:
    world = sqlite_world(tmp_path, hours=(4,))
    before = backup_files(world / "backups")
    with serve(world, "--allow-actions") as server:
        status, _body, headers = get(server.url + "/source/app")
        cookie = headers["Set-Cookie"].split(";")[0]
        assert status == 200 and cookie.startswith("dbkeeper_csrf=")
        assert get(server.url + "/source/app/backup", data=b"")[0] == 403
        assert get(server.url + "/source/app/backup", {"Cookie": cookie}, data=b"")[0] == 403
        forged = b"csrf_token=" + b"0" * 64
        assert get(server.url + "/source/app/backup", {"Cookie": cookie}, data=forged)[0] == 403
        # The right token from another site's page is refused too.
        status, body, _ = get(server.url + "/source/app", {"Cookie": cookie})
        token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', body)
        assert token is not None
        good = f"csrf_token={token[1]}".encode()
        assert (
            get(server.url + "/source/app/drill", {"Cookie": cookie, "Origin": "http://evil.example"}, good)[0] == 403
        )
        assert backup_files(world / "backups") == before
        assert (world / "drills.md").read_text().count("| app ") == 1
        # And with both, it runs.
        assert get(server.url + "/source/app/backup", {"Cookie": cookie}, good)[0] == 200
        assert len(backup_files(world / "backups")) == len(before) + 3
    assert "refused POST /source/app/backup" in server.output()
    # Read-only (no --allow-actions): no buttons, and every POST is refused.
    with serve(world) as server:
        status, body, headers = get(server.url + "/source/app")
        assert "Back up now" not in body
        cookie = headers["Set-Cookie"].split(";")[0]
        token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', body)
        assert token is None
        assert get(server.url + "/source/app/backup", {"Cookie": cookie}, data=b"csrf_token=x")[0] == 403


def test_a_non_loopback_address_needs_credentials(tmp_path: Path) -> None:
    import base64

    world = sqlite_world(tmp_path, hours=(4,))
    port = free_port()
    refused = run_dbkeeper("serve", "--listen", f"0.0.0.0:{port}", cwd=world, timeout=60)
    assert refused.returncode == 2
    assert "--listen 0.0.0.0 is reachable from other machines, and no credentials were given" in refused.stderr
    assert "Traceback" not in refused.stderr

    token = "s3cret-token-for-the-test"
    with serve(world, env={"DBKEEPER_WEB_AUTH": token}, host="0.0.0.0") as server:
        status, _body, headers = get(server.url + "/")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert get(server.url + "/metrics")[0] == 401
        assert get(server.url + "/", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(server.url + "/", {"Authorization": f"Bearer {token}"})[0] == 200
        basic = base64.b64encode(f"anyone:{token}".encode()).decode()
        assert get(server.url + "/metrics", {"Authorization": f"Basic {basic}"})[0] == 200
        assert get(server.url + "/healthz")[:2] == (200, "ok\n")  # says nothing but "ok"
        with browser() as chromium:
            page = chromium.new_page(http_credentials={"username": "me", "password": token})
            visit = look(page, server.url + "/")
            assert page.locator("table.overview tr.series").count() == 2 and visit.problems == []

    # user:password from a file only its owner reads; a file others may read is refused.
    auth = world / "web-auth"
    auth.write_text("ops:correct horse\n")
    auth.chmod(0o644)
    loose = run_dbkeeper("serve", "--listen", f"0.0.0.0:{port}", "--auth-file", str(auth), cwd=world, timeout=60)
    assert loose.returncode == 2 and "may be read by others (mode 0644)" in loose.stderr
    auth.chmod(0o600)
    with serve(world, "--auth-file", str(auth), host="0.0.0.0") as server:
        wrong = base64.b64encode(b"root:correct horse").decode()
        right = base64.b64encode(b"ops:correct horse").decode()
        assert get(server.url + "/", {"Authorization": f"Basic {wrong}"})[0] == 401
        assert get(server.url + "/", {"Authorization": f"Basic {right}"})[0] == 200


def test_behind_a_proxy_links_carry_the_prefix(tmp_path: Path) -> None:
    world = sqlite_world(tmp_path, hours=(4,))
    with serve(world, "--root-path", "/dbkeeper") as server, browser() as chromium:
        page = chromium.new_page()
        visit = look(page, server.url + "/dbkeeper/")
        link = page.locator('tr.series[data-series="app"] a').first
        assert link.get_attribute("href") == "/dbkeeper/source/app"
        link.click()
        assert page.locator("svg circle.point").count() == 1 and visit.problems == []
        # A proxy that strips the prefix and says so in X-Forwarded-Prefix; one that names no plain path is ignored.
    with serve(world) as server:
        _s, body, _h = get(server.url + "/", {"X-Forwarded-Prefix": "/ops/db"})
        assert 'href="/ops/db/source/app"' in body and 'href="/ops/db/static/style.css"' in body
        _s, body, _h = get(server.url + "/", {"X-Forwarded-Prefix": '/x"><script>'})
        assert 'href="/source/app"' in body and "<script>" not in body


def test_an_s3_store(tmp_path: Path, s3_env: dict[str, str], s3_store_url: str) -> None:
    make_sqlite_app(tmp_path / "app.db", users=100, sessions=100)
    (tmp_path / "dbkeeper.toml").write_text(
        f'store = "{s3_store_url}"\n[[sources]]\nname = "app"\nurl = "sqlite:///app.db"\n[drill]\nlog = "drills.md"\n'
    )
    for _ in range(3):
        done = run_dbkeeper("backup", "app", cwd=tmp_path, env=s3_env)
        assert done.returncode == 0, done.stderr
    drilled = run_dbkeeper("drill", cwd=tmp_path, env=s3_env)
    assert drilled.returncode == 0, drilled.stderr
    states = status_states(tmp_path, env=s3_env)
    with serve(tmp_path, "--allow-actions", env=s3_env) as server, browser() as chromium:
        page = chromium.new_page()
        visit = look(page, server.url + "/")
        assert page.locator('tr.series[data-series="app"] .state').inner_text() == states["app"] == "OK"
        assert visit.problems == []
        check_source_page(page, server.url, s3_store_url, "app", tables=3, env=s3_env)
        page.click("#backup-now")
        assert page.locator("#action-result").inner_text().startswith("Backup app: OK")
        assert len(good_backups(s3_store_url, "app")) == 4
        assert page.locator("svg circle.point").count() == 4


def test_a_postgresql_source(tmp_path: Path, pgdb: Any) -> None:
    pgdb.cluster.psql(
        "CREATE TABLE players (id serial PRIMARY KEY, name text);"
        "INSERT INTO players (name) SELECT 'p' || g FROM generate_series(1, 120) g;"
        "CREATE TABLE bets (id serial PRIMARY KEY, amount int);"
        "INSERT INTO bets (amount) SELECT g FROM generate_series(1, 40) g;",
        db=pgdb.name,
    )
    url = pgdb.url
    (tmp_path / "dbkeeper.toml").write_text(f'store = "backups"\n[[sources]]\nname = "casino"\nurl = "{url}"\n')
    env = pgdb.cluster.env()
    done = run_dbkeeper("backup", "casino", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    with serve(tmp_path, "--allow-actions", env=env) as server, browser() as chromium:
        page = chromium.new_page()
        visit = look(page, server.url + "/source/casino")
        page.click("#backup-now")
        assert page.locator("#action-result").inner_text().startswith("Backup casino: OK")
        good = good_backups(str(tmp_path / "backups"), "casino")
        assert len(good) == 2 and page.locator("svg circle.point").count() == 2
        page.click(f"table.backups a >> text={good[-1].name}")
        counts = dict(
            (row.locator("td").nth(0).inner_text(), row.locator("td").nth(1).inner_text())
            for row in page.locator("table.rows tbody tr").all()
        )
        assert counts == {"public.players": "120", "public.bets": "40"}
        restore = page.locator("#restore-command").inner_text()
        assert restore.startswith(f"dbkeeper restore {good[-1].name} postgresql://USER@HOST:5432/")
        # A drill from the web: the backup restored into a throwaway cluster, checked, logged, as `drill` does.
        page.click("text=← source casino")
        page.click("#drill-now")
        result = page.locator("#action-result").inner_text()
        assert result.startswith("Drill casino: OK"), result
        assert page.locator('section.series[data-series="casino"] table.drills tr.drill').count() == 1
        assert visit.problems == []
    from dbkeeper import state

    assert "| casino " in state.drill_log_path().read_text()  # the state directory's log (the server's env)


def test_the_overview_shows_each_wal_archive_its_window_and_live_rpo() -> None:
    """A real archiving cluster: without a base backup the overview says there is no window and why; after one,
    the window, the newest archived segment (the live RPO), the backlog read from the data directory and the
    state are what `dbkeeper status` says, and /metrics has the window."""
    from prometheus_client.parser import text_string_to_metric_families

    with archiving_cluster(_pg15_bindir(), settings=PITR_SETTINGS) as ac:
        ac.config.write_text(ac.config.read_text() + f'data_dir = "{ac.cluster.datadir}"\n')  # into [pitr]
        env = {"DBKEEPER_STATE_DIR": str(ac.state)}
        ac.wait_archived(ac.switch())
        with serve(ac.home, env=env) as server, browser() as chromium:
            page = chromium.new_page()
            visit = look(page, server.url + "/")
            row = page.locator(f'tr.archive[data-source="{SOURCE}"]')
            assert row.locator("td.window").inner_text() == "none: no good base backup"
            assert visit.problems == []

        backup = basebackup(ac)
        # The window opens at the first whole second after the backup ended, once a segment arrives after it.
        time.sleep(1)
        ac.wait_archived(ac.switch())
        said = json.loads(dbk(ac, "status", "--json").stdout)["pitr"][0]
        assert said["window"]["start"] is not None, said
        with serve(ac.home, env=env) as server, browser() as chromium:
            page = chromium.new_page()
            visit = look(page, server.url + "/")
            row = page.locator(f'tr.archive[data-source="{SOURCE}"]')
            assert row.locator(".state").inner_text() == said["state"]
            window = row.locator("td.window").inner_text()
            assert f"{said['window']['start']} .. {said['window']['end']}, 1 base backup" in window, window
            assert said["last_archived"]["file"] in row.locator("td.rpo").inner_text()
            assert said["backlog"] is not None and row.locator("td.backlog").inner_text().startswith(
                f"{said['backlog']['files']} waiting"
            )
            assert page.locator("#overall").inner_text() == json.loads(dbk(ac, "status", "--json").stdout)["state"]
            assert visit.problems == []

            # The archive's own page: the same state and window, its timeline, its base backup with prune's
            # decision, and the commands that restore it to a time and drill it.
            page.click(f'tr.archive[data-source="{SOURCE}"] a')
            assert page.locator("#pitr-state").inner_text() == said["state"]
            assert f"{said['window']['start']} .. {said['window']['end']}" in page.locator("#window").inner_text()
            [base] = page.locator("tr.base").all()
            assert base.get_attribute("data-id") == backup["id"] and "keep: " in base.inner_text()
            assert page.locator("tr.timeline").count() == 1
            restore = page.locator("#restore-time-command").inner_text()
            assert restore.startswith("dbkeeper restore --pitr ") and "--to-time " in restore
            # Not the window's end, which the newest WAL may hold no commit after, but a minute before it; this
            # window is seconds long, so a time to fill in (pitr/test_window.py has the rule).
            assert restore.split("--to-time ")[1].split()[0] == "YYYY-MM-DDTHH:MM:SSZ", restore
            assert page.locator("#drill-command").inner_text().startswith(f"dbkeeper drill --pitr --source {SOURCE}")
            assert visit.problems == []
            look(page, server.url + "/pitr/nosuch")
            assert "the store holds no WAL archive of source nosuch" in page.content()
            status, text, _headers = get(server.url + "/metrics")
            samples = {
                s.name: s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.labels.get("source") == SOURCE
            }
            start = datetime.fromisoformat(said["window"]["start"].replace("Z", "+00:00"))
            assert status == 200 and int(samples["dbkeeper_pitr_window_start_seconds"]) == int(start.timestamp())


def test_the_readme_screenshot(tmp_path: Path) -> None:
    """docs/img/dashboard.png, made from a real store: written with DBKEEPER_UPDATE_SCREENSHOT=1, else made here and
    only checked to be a picture of the overview."""
    world = sqlite_world(tmp_path, hours=(50, 40, 28))  # app's newest backup is older than 26h: CRITICAL
    with serve(world) as server, browser() as chromium:
        page = chromium.new_page(viewport={"width": 1100, "height": 420})
        visit = look(page, server.url + "/")
        assert page.locator('tr.series[data-series="app"] .state').inner_text() == "CRITICAL"
        assert page.locator('tr.series[data-series="shop"] .state').inner_text() == "OK"
        update = os.environ.get("DBKEEPER_UPDATE_SCREENSHOT") == "1"
        target = SCREENSHOT if update else tmp_path / "dashboard.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True)
        assert visit.problems == []
    png = target.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert SCREENSHOT.is_file() and "docs/img/dashboard.png" in (REPO / "README.md").read_text()


def test_every_command_of_the_dashboard_doc_runs(tmp_path: Path) -> None:
    """docs/DASHBOARD.md's sh blocks, line by line, as written but for the port (a free one), the auth file (in
    this test's directory) and a ``--listen 127.0.0.1:PORT`` added where a line names none. A line whose comment
    says ``exit N`` must exit N; a serve must answer its pages (with the doc's credentials); anything else must
    exit 0."""
    import base64
    import signal
    import subprocess
    import sys
    import time

    doc = (REPO / "docs" / "DASHBOARD.md").read_text()
    lines = [
        line
        for block in re.findall(r"```sh\n(.*?)```", doc, re.S)
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) >= 6
    world = sqlite_world(tmp_path, hours=(4,))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dbkeeper").write_text(f'#!/bin/sh\nexec {sys.executable} -m dbkeeper "$@"\n')
    (bin_dir / "dbkeeper").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    auth = tmp_path / "web-auth"
    ran = 0
    for line in lines:
        command, _, comment = line.partition("  #")
        port = free_port()
        command = command.strip().replace("/etc/dbkeeper/web-auth", str(auth)).replace("8090", str(port))
        if "dbkeeper serve" in command and "--listen" not in command:
            command += f" --listen 127.0.0.1:{port}"
        expected = re.search(r"exit (\d)", comment)
        proc = subprocess.Popen(
            ["bash", "-c", command], cwd=world, env=env, text=True, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            if expected or "dbkeeper serve" not in command:
                _out, err = proc.communicate(timeout=60)
                assert proc.returncode == (int(expected[1]) if expected else 0), (line, err)
                ran += 1
                continue
            headers = {}
            if "web-auth" in line:
                headers["Authorization"] = (
                    "Basic " + base64.b64encode(f"me:{auth.read_text().strip()}".encode()).decode()
                )
            prefix = "/dbkeeper" if "--root-path /dbkeeper" in command else ""
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (line, proc.stderr.read() if proc.stderr else "")
                try:
                    status, body, _h = get(f"http://127.0.0.1:{port}{prefix}/", headers)
                    break
                except OSError:
                    assert time.monotonic() < deadline, line
                    time.sleep(0.1)
            assert status == 200 and 'data-series="app"' in body, line
            if "web-auth" in line:
                assert get(f"http://127.0.0.1:{port}/")[0] == 401
            ran += 1
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    assert ran == len(lines)
    assert auth.stat().st_mode & 0o077 == 0


def test_what_the_store_says_is_shown_as_text_never_run(tmp_path: Path) -> None:
    """Table names come from the dump (and whoever can write the store writes manifests): markup in them is text."""
    import sqlite3

    world = sqlite_world(tmp_path, hours=(4,))
    hostile = '<img src=x onerror="document.title=1">'
    with sqlite3.connect(world / "app.db") as conn:
        quoted = '"' + hostile.replace('"', '""') + '"'
        conn.execute(f"CREATE TABLE {quoted} (x)")
        conn.executemany(f"INSERT INTO {quoted} VALUES (?)", [(i,) for i in range(1000)])  # among the biggest
    done = run_dbkeeper("backup", "app", cwd=world)
    assert done.returncode == 0, done.stderr
    newest = good_backups(str(world / "backups"), "app")[-1]
    with serve(world) as server, browser() as chromium:
        page = chromium.new_page()
        visit = look(page, f"{server.url}/backup/{newest.name}")
        assert hostile in page.locator("table.rows").inner_text()
        assert page.locator("img").count() == 0 and page.title() != "1"
        visit_source = look(page, f"{server.url}/source/app")
        assert hostile in page.locator("ul.legend").inner_text() and page.locator("img").count() == 0
        assert visit.problems == [] and visit_source.problems == []


def test_an_unreadable_store_is_an_error_page_and_healthz_says_so(tmp_path: Path) -> None:
    (tmp_path / "dbkeeper.toml").write_text('store = "s3://no-such-bucket/backups"\n')
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with serve(tmp_path, env=env) as server:
        status, body, _h = get(server.url + "/")
        assert status == 500 and "is unreachable" in body and "Try: " in body and "Traceback" not in body
        status, body, _h = get(server.url + "/healthz")
        assert status == 503 and body.startswith("store unreadable: cannot list s3://no-such-bucket/backups")


def test_serve_json_says_where_it_listens(tmp_path: Path) -> None:
    import subprocess
    import sys

    world = sqlite_world(tmp_path, hours=(4,))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbkeeper", "serve", "--json", "--listen", f"127.0.0.1:{port}", "--root-path", "x/"],
        cwd=world,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or lines[-1] != "}\n":
            lines.append(proc.stdout.readline())
            assert lines[-1], proc.stderr.read() if proc.stderr else ""
        doc = json.loads("".join(lines))
        assert doc == {
            "format_version": 1,
            "ok": True,
            "url": f"http://127.0.0.1:{port}/x/",
            "store": "backups",
            "actions": False,
        }
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
