"""pg_dump's custom archive format (``backup --format custom``), for ``pg_restore --jobs`` restores.

The archive is written uncompressed (``-Z 0``) and compressed by dbkeeper's own pipeline like a plain dump, so
the stored file is ``<db>_<stamp>.dump.gz``. Its content is checked by reading it through ``pg_restore -f -``:
the SQL text pg_restore makes of it has the same header, ``dump complete`` trailer and ``COPY`` blocks as a
plain dump, so the same scanner counts its rows, during the backup (a tee into pg_restore) and in ``verify``.
A restore spools the archive to a private temporary file (pg_restore needs to seek to run in parallel) and
runs ``pg_restore --jobs N --exit-on-error`` into the temporary database.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress

from dbkeeper import proc
from dbkeeper.codec import read_chunks
from dbkeeper.engines.postgres.dumpformat import PASSED, PlainDumpScanner
from dbkeeper.engines.postgres.dumpselect import Selection, Selector, select, toc_list
from dbkeeper.errors import ContentRefused, NoSpace, ToolError
from dbkeeper.workfiles import WorkDir


class ArchiveText:
    """Feeds archive bytes to ``pg_restore -f -`` and scans the SQL it prints, on a thread."""

    passed = PASSED

    def __init__(self, pg_restore: str) -> None:
        self.scanner = PlainDumpScanner()
        self._child = proc.Process([pg_restore, "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._thread = threading.Thread(target=self._read, name="dbkeeper-pg-restore-text", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        feed = self.scanner.feed
        for chunk in read_chunks(self._child.stdout):
            feed(chunk)

    def feed(self, chunk: bytes) -> None:
        """Feed pg_restore; if it gave up on the archive, ``result`` says why."""
        self._child.write(chunk)

    def end(self) -> None:
        """Wait for pg_restore's text of the whole archive; ContentRefused if it holds what is not data."""
        with suppress(BrokenPipeError):
            self._child.stdin.close()
        self._thread.join()
        if self.scanner.not_data:
            raise ContentRefused(
                f"the dump is not only data: {self.scanner.not_data}",
                "pg_dump never writes that: the file was changed after the backup; restore another backup",
            )

    def result(self) -> tuple[dict[str, int], list[str]]:
        with suppress(BrokenPipeError):
            self._child.stdin.close()
        self._thread.join()
        code = self._child.wait()
        problems = []
        if code != 0:
            last = (self._child.stderr_text().splitlines() or ["no message"])[-1]
            problems.append(f"pg_restore cannot read the archive ({last})")
        problems += [p for p in self.scanner.problems() if not problems or "empty" not in p]
        return dict(self.scanner.row_counts), problems

    def close(self) -> None:
        self._child.kill()


@contextmanager
def spooled(chunks: Iterable[bytes]) -> Iterator[str]:
    """The archive in a private temporary file (pg_restore seeks), removed on every path out."""
    with WorkDir("archive") as workdir:
        archive = os.path.join(workdir, "archive.dump")
        try:
            with open(archive, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
        except OSError as exc:
            raise NoSpace(
                f"cannot spool the archive to {workdir}: {exc.strerror}",
                "free space there or point TMPDIR at a larger disk",
            ) from exc
        yield archive


def selected_list(pg_restore: str, archive: str, selection: Selection) -> str:
    """The TOC list (``pg_restore -L``) of what ``selection`` keeps: chosen by the same rules as a plain dump's
    (dumpselect), read from the archive's schema as pg_restore prints it, then matched to ``pg_restore -l``."""
    selector = Selector(selection)
    schema = proc.run([pg_restore, "--schema-only", "-f", "-", archive], timeout=None)
    for _ in select([schema.encode("utf-8", "surrogateescape")], selection, selector):
        pass
    return toc_list(proc.run([pg_restore, "-l", archive], timeout=None), selector)


def load_archive(
    chunks: Iterable[bytes],
    *,
    pg_restore: str,
    dbname: str,
    env: dict[str, str],
    on_error: Callable[[ToolError], Exception],
    no_owner: bool,
    jobs: int,
    selection: Selection | None = None,
) -> None:
    """Spool the archive to a private temporary file (pg_restore seeks to work in parallel), then
    ``pg_restore --jobs N --exit-on-error`` it into ``dbname`` (only what ``selection`` keeps, through a TOC
    list); the spool is removed on every path out."""
    with spooled(chunks) as archive:
        argv = [pg_restore, "-w", "--exit-on-error", "--jobs", str(max(jobs, 1)), "--dbname", dbname]
        if no_owner:
            argv.append("--no-owner")
        if selection is not None:
            listing = archive + ".list"
            with open(listing, "w") as f:
                f.write(selected_list(pg_restore, archive, selection))
            argv += ["-L", listing]
        try:
            proc.run([*argv, archive], env=env, timeout=None)
        except ToolError as exc:
            raise on_error(exc) from exc
