"""The catalog and prune over stores of arbitrary, half-valid objects (sets of several sources and both layouts,
data without manifests, manifests of other files, garbage, sidecars of anything): the scan never raises, and
prune deletes only ok sets, never every ok set of a series."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbkeeper.prune import run_prune
from dbkeeper.repo import Repository, catalog, names
from dbkeeper.repo.manifest import iso
from dbkeeper.retention import Policy
from dbkeeper.storage.local import LocalStore
from history import NOW, Template, at, real_backup, small_app

_TEMPLATE: list[Template] = []


def template() -> Template:
    if not _TEMPLATE:
        scratch = Path(tempfile.mkdtemp(prefix="dbkeeper-fuzz-"))
        _TEMPLATE.append(real_backup(LocalStore(scratch / "s"), small_app(scratch / "app.db"), at("2020-01-01")))
    return _TEMPLATE[0]


Spec = tuple[str | None, str, int, str, str, str]  # source, when, seq, content, which parts, database
SOURCES = st.sampled_from(["app", "other", None])  # None: the legacy top level
WHEN = st.sampled_from(["2026-11-20", "2026-11-25", "2026-11-26", "2026-11-27 11:58", "2026-11-27 12:03", "2027-01-01"])
CONTENT = st.sampled_from(["good", "garbage", "foreign-source", "other-file", "future", "missing", "wrong-size"])


@st.composite
def sets(draw: st.DrawFn) -> Spec:
    return (
        draw(SOURCES),
        draw(WHEN),
        draw(st.integers(min_value=1, max_value=3)),
        draw(CONTENT),
        draw(st.sampled_from(["all", "no-manifest", "no-sidecar", "no-data"])),
        draw(st.sampled_from(["app", "x"])),
    )


def plant(store: LocalStore, tpl: Template, spec: Spec) -> None:
    source, when, seq, content, parts, db = spec
    set_name = dataclasses.replace(names.new_name(source or "x", db, at(when), ".db.gz", seq), source_id=source)
    name = set_name.name
    data = tpl.data if content != "wrong-size" else tpl.data + b"x"
    doc = dataclasses.replace(tpl.manifest, source_id=source or None, database=db, file=set_name.file)
    if source is None:
        doc.format_version = 1
    doc.created_at = doc.completed_at = iso(at("2030-01-01") if content == "future" else at(when))
    if content == "foreign-source":
        doc.source_id = "elsewhere"
        doc.format_version = 2
    if content == "other-file":
        doc.file = "app_20200101_000000.db.gz"
    manifest = b"\x00{garbage" if content == "garbage" else doc.to_json()
    if parts != "no-data" and content != "missing":
        store.put(name, [data])
    if parts != "no-sidecar":
        store.put(names.sidecar(name), [names.sha256_line(hashlib.sha256(data).hexdigest(), name)])
    if parts != "no-manifest":
        store.put(names.manifest(name), [manifest])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sets(), min_size=1, max_size=10))
def test_scan_never_raises_and_prune_removes_only_ok_sets(
    specs: list[Spec],
) -> None:
    tpl = template()
    root = Path(tempfile.mkdtemp(prefix="dbkeeper-fuzz-store-"))
    try:
        store = LocalStore(root)
        for spec in specs:
            plant(store, tpl, spec)
        before = Repository(store).scan(NOW)
        status = {e.name: e.status for e in before.entries}
        assert set(status.values()) <= {catalog.OK, catalog.INCOMPLETE, catalog.BROKEN, catalog.FUTURE}
        ok_series = {e.series for e in before.entries if e.good}
        result = run_prune(Repository(store), Policy(keep_last=1), clock=lambda: NOW)
        assert all(status[d.name] == catalog.OK for d in result.removed)
        after = Repository(store).scan(NOW)
        assert ok_series <= {e.series for e in after.entries if e.good}
        assert {e.name for e in after.entries if not e.good} == {n for n, s in status.items() if s != catalog.OK}
    finally:
        shutil.rmtree(root)
