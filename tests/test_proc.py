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
