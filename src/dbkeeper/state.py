"""The state directory: what dbkeeper keeps on a host between runs (the drill log, the locks, a metrics file).

``$DBKEEPER_STATE_DIR``, else ``/var/lib/dbkeeper`` as root (a system service's place), else
``$XDG_STATE_HOME/dbkeeper`` (``~/.local/state/dbkeeper``). Never the working directory: a container or a cron
job starts somewhere else every time, and a drill history kept there is lost with it. What every host must see
(the drill history) is also kept in the store (repo.drills); this directory is the host's own copy.

Each path here has a config key or variable that overrides it (``[drill] log``, ``$DBKEEPER_LOCK_DIR``,
``metrics_file``): they keep working as before.
"""

from __future__ import annotations

import os

# pathlib only when a Path is asked for: pitr/spool.py asks state_root() on wal-push's fast path, where importing
# pathlib (and re with it) costs ~20 ms of a 50 ms budget.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

SYSTEM_DIR = "/var/lib/dbkeeper"


def state_root() -> str:
    """The state directory as a string, deciding with ``os`` alone: the WAL daemon's spool (pitr/spool.py) lives
    below it and ``wal-push``'s fast path, which reads that spool, imports nothing it does not need."""
    explicit = os.environ.get("DBKEEPER_STATE_DIR")
    if explicit:
        return explicit
    if getattr(os, "geteuid", lambda: -1)() == 0:
        return SYSTEM_DIR
    xdg = os.environ.get("XDG_STATE_HOME")
    # The XDG spec: a relative value is invalid and must be ignored.
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "dbkeeper")


def state_dir() -> Path:
    from pathlib import Path

    return Path(state_root())


def drill_log_path() -> Path:
    """The Markdown drill log this host appends to unless ``[drill] log`` / ``--log`` names another."""
    return state_dir() / "DR_DRILL_LOG.md"


def lock_dir() -> Path:
    """Where the per-source locks live: ``$DBKEEPER_LOCK_DIR``, else ``locks`` in the state directory."""
    from pathlib import Path

    explicit = os.environ.get("DBKEEPER_LOCK_DIR")
    return Path(explicit) if explicit else state_dir() / "locks"


def metrics_path() -> Path:
    """The Prometheus textfile ``--metrics-file`` writes when given no path."""
    return state_dir() / "metrics" / "dbkeeper.prom"
