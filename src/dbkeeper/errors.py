"""One exception tree. Each class carries its exit code; each instance its message and a hint.

Only ``cli.main`` turns these into text and an exit status: one line saying what failed, one ``Try:`` line
saying what to do.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CHECK = 3


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
