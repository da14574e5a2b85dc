"""One exception tree. Each class carries its exit code; each instance its message and a hint.

Only ``cli.main`` turns these into text and an exit status: one line saying what failed, one ``Try:`` line
saying what to do.

Exit codes (the README's table is this one):

- 0 done (``status``: every series OK);
- 1 the operation failed (a server, a tool, the store, a lock: retrying after fixing the cause may work);
- 2 the command line, the configuration, or what it names is wrong: an unknown flag or key, a store or backup
  that does not exist (nothing was looked at, so nothing can be said about any backup);
- 3 a check ran and found a problem (``verify``, ``drill``, ``restore`` refusing a damaged backup).

``status`` is a monitoring check and speaks Nagios instead: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (it could
not look: a usage error, a missing store); see ``NAGIOS``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CHECK = 3

# status's exit codes, as Nagios, Icinga, Zabbix's and Sensu's check runners read them.
NAGIOS = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


class DbkeeperError(Exception):
    """Something failed; the run stops and nothing partial is left behind."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(DbkeeperError):
    """The command line or the configuration is wrong."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """dbkeeper.toml or the environment holds a value that is not allowed."""


class CheckFailed(DbkeeperError):
    """A check (verify, drill, status) found a problem with a backup."""

    exit_code = EXIT_CHECK


class ContentRefused(CheckFailed):
    """A backup holds what would run as more than data (a psql meta-command, a statement pg_dump never writes)."""


class ToolError(DbkeeperError):
    """An outside program (pg_dump, psql, ...) failed; the message quotes its stderr."""

    def __init__(self, message: str, hint: str | None = None, stderr: str = "") -> None:
        super().__init__(message, hint)
        self.stderr = stderr


class ToolNotFound(ToolError):
    """No suitable client program was found."""


class SourceError(DbkeeperError):
    """The database could not be reached or read."""


class RestoreError(DbkeeperError):
    """A restore failed; the target is as it was."""


class StoreError(DbkeeperError):
    """A store operation failed."""


class NotFound(StoreError):
    """The object or backup does not exist."""


class NoSuchBackup(NotFound):
    """The backup the command line names is not in the store (not even a part of it): nothing to check."""

    exit_code = EXIT_USAGE


class StoreMissing(NotFound):
    """The store the command names does not exist (no directory, no bucket): a typo, not an empty store."""

    exit_code = EXIT_USAGE


class AlreadyExists(StoreError):
    """An object is already stored under that name, and the write was not allowed to replace it."""


class PermissionDenied(StoreError):
    """The store refused access."""


class Transient(StoreError):
    """A failure that may pass if the operation is tried again (network, throttling)."""


class NoSpace(StoreError):
    """The store ran out of space."""


class LockHeld(DbkeeperError):
    """Another dbkeeper run holds the lock for this source."""


class EncryptionError(DbkeeperError):
    """Encryption or decryption failed (wrong identity, damaged ciphertext)."""
