"""The one place that runs subprocesses.

Rules (borg's): argv lists only, never a shell; the child's environment is scrubbed of secrets it does not
need; stderr is always kept (bounded) so a failure can quote it; every exit status is checked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import IO

from dbkeeper.errors import ToolError

# Variables no database client needs to see.
_SECRET_PREFIXES = ("AWS_", "DBKEEPER_AGE_", "DBKEEPER_WEBHOOK", "DBKEEPER_PING")
_STDERR_KEEP = 64 * 1024


def child_env(extra: Mapping[str, str] | None = None, drop: Sequence[str] = ()) -> dict[str, str]:
    """The environment for a child: ours, less other tools' secrets and ``drop``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_PREFIXES) and k not in drop}
    if extra:
        env.update(extra)
    return env


class _StderrTail:
    """Drains a pipe in a thread, keeping the last few KiB (a chatty child must never block on stderr), and
    passing each chunk on to ``echo`` as it comes when given."""

    def __init__(self, pipe: IO[bytes], echo: IO[bytes] | None = None) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._echo = echo
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        with pipe:
            for chunk in iter(lambda: pipe.read1(8192), b""):  # type: ignore[attr-defined]
                if self._echo is not None:
                    try:
                        self._echo.write(chunk)
                        self._echo.flush()
                    except (OSError, ValueError):
                        self._echo = None  # our own stderr went away: keep draining, stop passing on
                self._chunks.append(chunk)
                self._size += len(chunk)
                while self._size > _STDERR_KEEP and len(self._chunks) > 1:
                    self._size -= len(self._chunks.popleft())

    def text(self) -> str:
        self._thread.join(timeout=5)
        return self.so_far()

    def so_far(self) -> str:
        """What the child printed so far (while it runs: no waiting for it to end)."""
        return b"".join(list(self._chunks)).decode("utf-8", "replace").strip()


_F_SETPIPE_SZ = 1031  # Linux fcntl: pipe capacity


def _widen_pipe(pipe: IO[bytes], size: int = 1 << 20) -> None:
    """Give a pipe 1 MiB of capacity (Linux; 64 KiB by default): fewer wake-ups per MB streamed."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, size)
    except (ImportError, OSError):
        pass  # other platforms, or above /proc/sys/fs/pipe-max-size: the default works, just slower


class Process:
    """A running child with its stderr kept. Use as a context manager: leaving it kills a child still running."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | IO[bytes] | None = subprocess.PIPE,
        cwd: str | None = None,
        new_session: bool = False,
        stderr_echo: IO[bytes] | None = None,
    ) -> None:
        """``new_session``: the child gets its own session, so a Ctrl-C on our terminal does not reach it.
        ``stderr_echo``: where the child's stderr goes as it comes, besides being kept (a scheduler's log)."""
        self.argv = [str(a) for a in argv]
        self.name = os.path.basename(self.argv[0])
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else child_env(),
                cwd=cwd,
                start_new_session=new_session,
            )
        except OSError as exc:
            raise ToolError(f"cannot run {self.name}: {exc.strerror}", "check that it is installed") from exc
        assert self._popen.stderr is not None
        self._stderr = _StderrTail(self._popen.stderr, stderr_echo)
        self._stopped_reading = False
        for pipe in (self._popen.stdout, self._popen.stdin):
            if pipe is not None:
                _widen_pipe(pipe)

    @property
    def stdout(self) -> IO[bytes]:
        assert self._popen.stdout is not None
        return self._popen.stdout

    def write(self, data: bytes) -> None:
        """Feed the child's stdin. A child that stopped reading gets nothing more: its exit status and stderr,
        which ``check`` turns into the error, say why."""
        if self._stopped_reading:
            return
        try:
            self.stdin.write(data)
        except BrokenPipeError:
            self._stopped_reading = True

    @property
    def stdin(self) -> IO[bytes]:
        assert self._popen.stdin is not None
        return self._popen.stdin

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._popen.wait(timeout)

    def stderr_text(self) -> str:
        return self._stderr.text()

    def stderr_so_far(self) -> str:
        """The child's stderr up to now, without waiting for it to end (a running psql's ``\\warn`` lines)."""
        return self._stderr.so_far()

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait()

    def check(self) -> None:
        """Wait for the child and raise ToolError quoting its stderr unless it exited 0."""
        for pipe in (self._popen.stdin, self._popen.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        code = self._popen.wait()
        if code != 0:
            raise tool_failure(self.name, code, self.stderr_text())

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for pipe in (self._popen.stdin, self._popen.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def tool_failure(name: str, code: int, stderr: str) -> ToolError:
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return ToolError(f"{name} {how}" + (f": {last}" if last else ""), stderr=stderr)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
) -> str:
    """Run a child to completion and return its stdout as text; raise ToolError on a non-zero exit."""
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            env=dict(env) if env is not None else child_env(),
            timeout=timeout,
            check=False,
        )
    except OSError as exc:
        raise ToolError(f"cannot run {os.path.basename(str(argv[0]))}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{os.path.basename(str(argv[0]))} did not answer within {timeout:g}s") from exc
    if done.returncode != 0:
        raise tool_failure(os.path.basename(str(argv[0])), done.returncode, done.stderr.decode("utf-8", "replace"))
    return done.stdout.decode("utf-8", "replace")


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then act as they would have: for a step that must not be
    left half done by Ctrl-C, a cron timeout or systemd stopping the job (a restore's swap of two databases).
    SIGKILL cannot wait: what it leaves is for ``dbkeeper cleanup`` to settle. Only the main thread has signal
    handlers; elsewhere this holds nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[signal.Signals] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def note(signum: int, frame: object) -> None:
        caught.append(signal.Signals(signum))

    for sig in previous:
        signal.signal(sig, note)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
