"""The command line: one module per command. This is the only place that prints errors and exits.

Each command module has ``register(subparsers)`` and a ``run(args) -> int``: parse, call one core function,
render the result as text or, with ``--json``, as one JSON document.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence

from dbkeeper import __version__, log
from dbkeeper.cli.common import add_global_options
from dbkeeper.errors import EXIT_FAILED, EXIT_USAGE, DbkeeperError

# Command name -> its module. Only the command being run is imported (with what it needs), so a cron job or a
# restore does not pay for every other command's imports at start-up; --help imports them all.
COMMANDS = {
    "backup": "backup",
    "list": "list_",
    "cleanup": "cleanup",
    "verify": "verify",
    "restore": "restore",
    "copy": "copy",
    "prune": "prune",
    "drill": "drill",
    "status": "status",
    "schedule": "schedule",
    "key": "key",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"dbkeeper: error: {message}\n  Try: {self.prog} --help\n")
        raise SystemExit(EXIT_USAGE)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` just that command's (what ``main`` uses to run one)."""
    parser = _Parser(
        prog="dbkeeper",
        description="Database backups that are boringly reliable; restores that are fast and proven.",
    )
    parser.add_argument("--version", action="version", version=f"dbkeeper {__version__}")
    parser.add_argument("--config", metavar="FILE", help="config file (default: $DBKEEPER_CONFIG or ./dbkeeper.toml)")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"dbkeeper.cli.{module}").register(sub)
    for command in sub.choices.values():
        add_global_options(command, argparse.SUPPRESS)  # after the command too: dbkeeper backup -q
    return parser


def _command(words: list[str]) -> str | None:
    """The command named on the command line (after the global options), if it is one of ours."""
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("--config", "--log-format"):
            skip = True
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


class Terminated(BaseException):
    """SIGTERM (a cron timeout, systemd stopping the job, Kubernetes): unwind like Ctrl-C, cleaning up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    # numpy (it scans dumps for row counts) starts a BLAS thread per core at import, which spin for a while
    # although nothing here does linear algebra: on two cores that is CPU taken from the dump.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(words))
    args = parser.parse_args(words)
    log.configure(quiet=bool(args.quiet), verbose=args.verbose or 0, fmt=args.log_format or "text")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code: int = args.run(args)
        return code
    except DbkeeperError as exc:
        return report_error(exc, getattr(args, "json", False))
    except KeyboardInterrupt:
        sys.stderr.write("dbkeeper: interrupted; nothing partial was kept\n")
        return 130
    except Terminated:
        sys.stderr.write("dbkeeper: terminated; nothing partial was kept\n")
        return 143
    except BrokenPipeError:
        return EXIT_FAILED


def report_error(exc: DbkeeperError, as_json: bool) -> int:
    if as_json:
        doc = {"ok": False, "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
        print(json.dumps(doc, indent=2))
    from dbkeeper.cli.common import print_error

    print_error(exc)
    return exc.exit_code
