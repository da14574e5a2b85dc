"""What numpy buys the row counter: the plain-dump checker (row counts, header, trailer, the SQL between COPY
blocks) over the same synthetic dump, with numpy and without it (the bytes methods), in one run.

    python bench/rowcount.py                 # ~300 MB of COPY data in 1 MiB chunks, 5 rounds each, interleaved
    python bench/rowcount.py --mb 100 --rounds 3 --rows narrow

Each round runs the checker in a fresh process (so numpy's import counts where it would), with and without numpy,
in turn; the report gives each one's median CPU seconds and throughput, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from without import hide_modules_prelude  # noqa: E402

_CHECK = """
import json, sys, time
from dbkeeper.engines.postgres import dumpformat
mb, chunk = int(sys.argv[1]), 1 << 20
row = {
    "wide": b"4711\\tsome user name\\t2026-11-27 02:00:00+00\\t\\\\N\\t3.14159\\tan ordinary text column of a row\\n",
    "narrow": b"4711\\t42\\n",  # a link table: the most rows per byte, where counting costs most
}[sys.argv[2]]
head = b"--\\n-- PostgreSQL database dump\\n--\\n\\nSET statement_timeout = 0;\\n\\n"
blocks, target = [], mb * 1_000_000
per_table = 1 + target // 20 // len(row)
for t in range(20):
    copy = b"COPY public.t%d (id, name, at, note, score, text) FROM stdin;\\n" % t
    blocks.append(copy + row * per_table + b"\\\\.\\n\\n")
dump = head + b"".join(blocks) + b"--\\n-- PostgreSQL database dump complete\\n--\\n\\n"
check = dumpformat.PlainCheck()
view = memoryview(dump)
t0, c0 = time.perf_counter(), time.process_time()
for i in range(0, len(dump), chunk):
    check.feed(bytes(view[i : i + chunk]))
counts, problems = check.result()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
assert not problems and sum(counts.values()) == 20 * per_table, (problems, sum(counts.values()))
print(json.dumps({"bytes": len(dump), "wall": wall, "cpu": cpu, "numpy": dumpformat._numpy is not None}))
"""


def one(mb: int, numpy: bool, rows: str) -> dict[str, float]:
    prelude = "" if numpy else hide_modules_prelude("numpy")
    done = subprocess.run(
        [sys.executable, "-c", prelude + _CHECK, str(mb), rows], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout)
    assert numpy or not result["numpy"], result  # with numpy, it loads on a thread while the first chunks pass
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", choices=["wide", "narrow"], default="wide", help="~95-byte rows, or 8-byte ones")
    args = ap.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.rounds):
        for numpy in (True, False):
            runs[numpy].append(one(args.mb, numpy, args.rows))
    size = runs[True][0]["bytes"]
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "cpu")} for k, v in runs.items()}
    for numpy, label in ((True, "with numpy"), (False, "without numpy (bytes methods)")):
        m = med[numpy]
        rate = size / 1e6 / m["wall"]
        print(
            f"{label:<31} {size / 1e6:.0f} MB of {args.rows} rows: cpu {m['cpu']:.3f} s, wall {m['wall']:.3f} s,"
            f" {rate:.0f} MB/s"
        )
    print(f"without/with numpy, wall: {med[False]['wall'] / med[True]['wall']:.2f}x")


if __name__ == "__main__":
    main()
