"""The command line: one module per command. This is the only place that prints errors and exits.

Each command module has ``register(subparsers)`` and a ``run(args) -> int``: parse, call one core function,
render the result as text or, with ``--json``, as one JSON document.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from dbkeeper import __version__, log
from dbkeeper.cli.common import add_global_options
from dbkeeper.errors import EXIT_FAILED, EXIT_USAGE, NAGIOS, DbkeeperError, UsageError

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
    "wal-push": "wal_push",
    "wal-fetch": "wal_fetch",
    "basebackup": "basebackup",
    "ledger": "ledger",
    "wal-daemon": "wal_daemon",
    "wal-verify": "wal_verify",
    "check": "check",
    "completion": "completion",
    "serve": "serve",
}

# PostgreSQL reads these commands' exit status, and reads it narrowly (see their modules): every way out of
# them, a usage error and an unforeseen exception included, maps onto the statuses it understands.
_EXIT_ONLY: dict[str, Callable[[int], int]] = {
    "wal-push": lambda code: 0 if code == 0 else 1,
    "wal-fetch": lambda code: code if code in (0, 1) or code > 125 else 126,
}


# A usage error exits 2, except where the command's callers read exit codes another way: status is a Nagios
# check, for which a check that could not run is UNKNOWN (3).
USAGE_EXIT = {"status": NAGIOS["UNKNOWN"]}


class _Parser(argparse.ArgumentParser):
    """argparse with our error lines; ``usage_exit`` is the code a usage error exits with (status: UNKNOWN).
    Options are spelled out: argparse would take ``restore --drop`` for ``--drop-existing``, a guess that
    replaces a database."""

    def __init__(self, *args: Any, usage_exit: int = EXIT_USAGE, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.usage_exit = usage_exit

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"dbkeeper: error: {message}\n  Try: {self.prog} --help\n")
        raise SystemExit(self.usage_exit)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` just that command's (what ``main`` uses to run one)."""
    parser: _Parser = _Parser(
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
            sub.choices[name].usage_exit = USAGE_EXIT.get(name, EXIT_USAGE)
    if only in USAGE_EXIT:
        parser.usage_exit = USAGE_EXIT[only]
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


def _unreadable(words: list[str]) -> UsageError | None:
    """An argument no command can use: a NUL byte (no path, URL or name holds one; the OS cannot pass it on) or
    bytes that are not UTF-8 (Python hands them over as surrogates, which no store name, URL or manifest can
    carry). Refused here, before anything is read or written, rather than failing half-way somewhere inside."""
    for number, word in enumerate(words, 1):
        if "\x00" in word:
            return UsageError(f"argument {number} holds a NUL byte", "remove it")
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            shown = repr(word.encode("utf-8", "surrogateescape"))[2:-1]  # b'…' without its b'': \xff, \n
            return UsageError(
                f"argument {number} is not valid UTF-8: {shown[:80]}",
                "pass names, paths and URLs in UTF-8 (rename a file whose name is in another encoding)",
            )
    return None


class Terminated(BaseException):
    """SIGTERM (a cron timeout, systemd stopping the job, Kubernetes): unwind like Ctrl-C, cleaning up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command(words)
    remap = _EXIT_ONLY.get(command or "")
    if remap is None:
        return _main(words, command)
    try:
        code = _main(words, command)
    except SystemExit as exc:  # --help, or a usage error
        raise SystemExit(remap(exc.code if isinstance(exc.code, int) else 1)) from None
    except Exception as exc:
        sys.stderr.write(f"dbkeeper: {command} failed: {type(exc).__name__}: {exc}\n")
        code = 1
    return remap(code)


def _main(words: list[str], command: str | None) -> int:
    # numpy (when installed, it scans dumps for row counts) starts a BLAS thread per core at import, which spin for
    # a while although nothing here does linear algebra: on two cores that is CPU taken from the dump.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    bad = _unreadable(words)
    if bad is not None:
        return report_error(bad, False)
    parser = build_parser(command)
    args, extra = parser.parse_known_args(words)
    if len(extra) == 1 and not extra[0].startswith("-") and getattr(args, "target", "") is None:
        # An optional positional (restore's TARGET) after an option: argparse takes the positionals in one go
        # (`restore latest --database casino postgresql://…/casino_copy` left TARGET empty and the URL over).
        args.target = extra[0]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
    from dbkeeper.cli.common import emit_json, print_error

    if as_json:
        emit_json({"ok": False, "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code})

    print_error(exc)
    return exc.exit_code
