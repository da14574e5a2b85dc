"""verify against sidecars someone else wrote: one naming another file, a path, or holding more than one line is
refused; sha256sum's binary marker ``*`` is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbkeeper.repo import Repository, names
from dbkeeper.storage.local import LocalStore
from dbkeeper.verify import verify
from history import Template, at, plant, real_backup, small_app


@pytest.fixture
def template(tmp_path: Path) -> Template:
    return real_backup(LocalStore(tmp_path / "scratch"), small_app(tmp_path / "app.db"), at("2020-01-01"))


def test_a_sidecar_must_name_its_own_file(tmp_path: Path, template: Template) -> None:
    store = LocalStore(tmp_path / "backups")
    name = plant(store, template, at("2026-11-26"))
    other = plant(store, template, at("2026-11-25"))
    digest, file = template.manifest.sha256, names.basename(name)
    sidecar = store.local_path(names.sidecar(name))
    for text, ok in [
        (f"{digest}  {names.basename(other)}\n", False),  # the right digest, another file's name
        (f"{digest}  ../{file}\n", False),
        (f"{digest}  app/{file}\n", False),
        (f"{digest}  {file}\n{'0' * 64}  x\n", False),
        (f"{digest.upper()}  {file}\n", False),
        (f"{digest} *{file}\n", True),
        (f"{digest}  {file}\n", True),
    ]:
        sidecar.write_text(text)
        report = verify(Repository(store), name, None)
        assert report.ok == ok, (text, report.first_problem())
        if not ok:
            assert "sidecar" in str(report.first_problem())
