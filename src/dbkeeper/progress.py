"""How a long job says how far it is: what the core reports, not how it is shown (the CLI draws it).

A job calls ``expect(total)`` when it knows roughly how many bytes will pass (a backup: the database's size; a
restore, verify or copy: the manifest's size), ``update(done)`` with the running total of bytes so far (never a
chunk's own size), and ``phase(text)`` when it moves on to work that moves no bytes it can count ("building
indexes", "checking row counts"). Calls may come from any thread.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def expect(self, total: int | None) -> None: ...
    def update(self, done: int, stored: int | None = None) -> None: ...
    def phase(self, text: str) -> None: ...


class Silent:
    """Progress that shows nothing (no terminal, ``--json``, ``-q``, several jobs at once)."""

    def expect(self, total: int | None) -> None:
        pass

    def update(self, done: int, stored: int | None = None) -> None:
        pass

    def phase(self, text: str) -> None:
        pass


SILENT = Silent()
