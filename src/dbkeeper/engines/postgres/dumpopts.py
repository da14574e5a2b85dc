"""pg_dump's own controls as dbkeeper passes them: a DumpSelection turned into pg_dump arguments, and the
``--pg-dump-option`` pass-through checked against the options that leave what dbkeeper relies on intact.

dbkeeper relies on pg_dump writing one database (the one it connected to, through the libpq environment) to
standard output, in the format it asked for, as COPY blocks it can count, with no statement that drops or
creates a database or switches roles. An option that would change any of that is refused by name, with what to
use instead; an option not named here at all is refused too (a new pg_dump option is allowed once it is known
to be harmless). Options that take a value are given in one word: ``--pg-dump-option=--lock-wait-timeout=30s``.
"""

from __future__ import annotations

from dbkeeper.engines.interface import DumpSelection
from dbkeeper.errors import UsageError

# Options that only change what is left out or how pg_dump waits: none changes the format, the target, or
# anything the dump's checker and the restore count on. (flag, takes a value)
ALLOWED: dict[str, bool] = {
    "--no-comments": False,
    "--no-publications": False,
    "--no-subscriptions": False,
    "--no-security-labels": False,
    "--no-tablespaces": False,
    "--no-toast-compression": False,
    "--no-table-access-method": False,
    "--no-unlogged-table-data": False,
    "--no-privileges": False,
    "--no-acl": False,
    "-x": False,
    "--no-owner": False,
    "-O": False,
    "--no-large-objects": False,
    "--no-blobs": False,
    "--large-objects": False,
    "--blobs": False,
    "-b": False,
    "-B": False,
    "--quote-all-identifiers": False,
    "--load-via-partition-root": False,
    "--enable-row-security": False,
    "--serializable-deferrable": False,
    "--no-sync": False,
    "--strict-names": False,
    "--disable-dollar-quoting": False,
    "--lock-wait-timeout": True,
    "--extra-float-digits": True,
    "--include-foreign-data": True,
    "--snapshot": True,
    "--extension": True,
    "--exclude-extension": True,
}

# Refused, and what to use instead (the first word that matches, short or long).
_REFUSED: list[tuple[tuple[str, ...], str]] = [
    (("-f", "--file"), "dbkeeper writes the dump into the store itself; use --store"),
    (("-F", "--format"), "use dbkeeper backup --format plain|custom"),
    (("-h", "--host", "-p", "--port", "-U", "--username", "-d", "--dbname"), "name the source: a URL, -h/-p/-U/-d"),
    (("-W", "--password", "-w", "--no-password"), "dbkeeper never prompts: put the password in ~/.pgpass"),
    (("-c", "--clean", "--if-exists"), "restore --drop-existing replaces a database whole"),
    (("-C", "--create"), "restore creates the database itself, with the source's encoding and locale"),
    (("-j", "--jobs"), "pg_dump --jobs needs the directory format; use backup --parallel-sources for several sources"),
    (("-Z", "--compress"), "use dbkeeper backup --compress gzip|zstd|none"),
    (("-t", "--table"), "use dbkeeper backup --table (recorded in the manifest)"),
    (("-T", "--exclude-table"), "use dbkeeper backup --exclude-table (recorded in the manifest)"),
    (("-n", "--schema"), "use dbkeeper backup --schema (recorded in the manifest)"),
    (("-N", "--exclude-schema"), "use dbkeeper backup --exclude-schema (recorded in the manifest)"),
    (("--exclude-table-data",), "use dbkeeper backup --exclude-table-data (recorded in the manifest)"),
    (("--filter",), "use dbkeeper backup --table/--exclude-table/--schema/--exclude-schema"),
    (
        ("--inserts", "--column-inserts", "--attribute-inserts", "--rows-per-insert"),
        "dbkeeper counts rows in COPY blocks; keep pg_dump's COPY",
    ),
    (("-a", "--data-only", "-s", "--schema-only", "--section"), "a restore needs the schema and the data together"),
    (("--role", "--use-set-session-authorization"), "a dump that switches roles is refused on restore"),
    (("-E", "--encoding"), "the dump is kept in the server's encoding, which the manifest records"),
    (
        ("--binary-upgrade", "--disable-triggers", "--on-conflict-do-nothing", "-S", "--superuser", "--restrict-key"),
        "not for a backup dbkeeper restores",
    ),
    (("-v", "--verbose", "-V", "--version", "-?", "--help"), "not an option for the dump itself"),
]


def check_options(options: tuple[str, ...] | list[str], where: str = "--pg-dump-option") -> tuple[str, ...]:
    """The options, each checked against ``ALLOWED``; UsageError naming the first refused one and what to use."""
    for option in options:
        flag, has_value, value = option.partition("=")
        if not option.startswith("-"):
            raise UsageError(
                f"{where} {option!r} is not a pg_dump option",
                f"give one option a time, with its value after '=': {where}=--lock-wait-timeout=30s",
            )
        for flags, instead in _REFUSED:
            if flag in flags or (len(flag) > 2 and not flag.startswith("--") and flag[:2] in flags):
                raise UsageError(f"{where} {flag} is refused: it changes what dbkeeper relies on", instead)
        if flag not in ALLOWED:
            raise UsageError(
                f"{where} {flag} is not one dbkeeper passes to pg_dump",
                f"allowed: {', '.join(sorted(ALLOWED))}",
            )
        if ALLOWED[flag] and not (has_value and value):
            raise UsageError(f"{where} {flag} needs a value", f"write it in one word: {where}={flag}=VALUE")
        if not ALLOWED[flag] and has_value:
            raise UsageError(f"{where} {flag} takes no value")
    return tuple(options)


def dump_arguments(selection: DumpSelection | None) -> list[str]:
    """pg_dump's arguments for ``selection``. An include pattern that matches nothing is an error
    (``--strict-names``), never a backup that silently holds less than was asked."""
    if not selection:
        return []
    check_options(selection.pg_dump_options)
    argv: list[str] = []
    for flag, patterns in (
        ("--table", selection.tables),
        ("--exclude-table", selection.exclude_tables),
        ("--schema", selection.schemas),
        ("--exclude-schema", selection.exclude_schemas),
        ("--exclude-table-data", selection.exclude_table_data),
    ):
        for pattern in patterns:
            if not pattern or "\n" in pattern or "\x00" in pattern:
                raise UsageError(f"{flag} {pattern!r} is not a pattern", "name a table or schema, e.g. public.users")
            argv.append(f"{flag}={pattern}")
    if selection.tables or selection.schemas:
        argv.append("--strict-names")
    return argv + list(selection.pg_dump_options)
