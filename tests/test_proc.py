import subprocess

import pytest

from dbkeeper import proc
from dbkeeper.errors import ToolError


def test_a_child_that_stops_reading_is_reported_by_its_exit_not_by_the_write() -> None:
    with proc.Process(["sh", "-c", "echo 'bad input' >&2; exit 3"], stdin=subprocess.PIPE) as child:
        child.wait()
        for _ in range(64):  # far more than the pipe holds: the first write past the exit breaks the pipe
            child.write(b"x" * 65536)
        with pytest.raises(ToolError, match=r"exited with status 3: bad input"):
            child.check()


def test_write_feeds_a_child_that_reads() -> None:
    with proc.Process(["wc", "-c"], stdin=subprocess.PIPE) as child:
        child.write(b"abc")
        child.write(b"de")
        child.stdin.close()
        assert child.stdout.read().strip() == b"5"
        child.check()


def test_stderr_is_passed_on_as_it_comes_and_its_tail_kept() -> None:
    """A scheduler's log gets a step's stderr while the step runs, not when it ends."""
    import os
    import time

    read_end, write_end = os.pipe()
    with (
        os.fdopen(read_end, "rb", buffering=0) as seen,
        os.fdopen(write_end, "wb") as echo,
        proc.Process(["sh", "-c", "echo started >&2; exec sleep 30"], stderr_echo=echo) as child,
    ):
        deadline = time.monotonic() + 10
        got = b""
        while b"started\n" not in got and time.monotonic() < deadline:
            got += seen.read(64)
        assert got == b"started\n" and child.poll() is None  # there while the child still runs
        child.kill()
        child.wait()
        assert child.stderr_text() == "started"
