"""numpy is optional (the [fast] extra): without it the plain-dump checker gives the same counts and problems on
large chunks, and nothing is printed (the loader thread's ImportError is expected, not an uncaught exception)."""

from __future__ import annotations

import json
import subprocess
import sys

from without import hide_modules_prelude

_CHECK = r"""
import json
from dbkeeper.engines.postgres import dumpformat
row = b"1\tsome text\t\\N\n"
dump = (b"--\n-- PostgreSQL database dump\n--\n\nSET x = 0;\n"
        + b"COPY public.a (id, t, n) FROM stdin;\n" + row * 300_000 + b"\\.\n\n"
        + b"COPY public.b (id) FROM stdin;\n" + b"7\n" * 123_457 + b"\\.\n\n"
        + b"--\n-- PostgreSQL database dump complete\n--\n\n")
def scan():
    check = dumpformat.PlainCheck()
    for i in range(0, len(dump), 1 << 20):
        check.feed(dump[i : i + (1 << 20)])
    return check.result()
scan()  # the first large chunk starts loading numpy, if it can be had
import time
time.sleep(1)
counts, problems = scan()  # with numpy loaded (where it is), every large chunk goes through it
print(json.dumps({"counts": counts, "problems": problems, "numpy": dumpformat._numpy is not None}))
"""


def run(prelude: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", prelude + _CHECK], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_counts_without_numpy_are_the_counts_with_it() -> None:
    without = run(hide_modules_prelude("numpy"))
    assert without["numpy"] is False
    assert without["counts"] == {"public.a": 300_000, "public.b": 123_457} and without["problems"] == []
    with_numpy = run("")
    assert with_numpy["numpy"] is True  # the [test] extra installs it, so both ways are tested
    assert {k: with_numpy[k] for k in ("counts", "problems")} == {k: without[k] for k in ("counts", "problems")}
