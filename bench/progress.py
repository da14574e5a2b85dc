"""What the progress line costs a backup: the same ``dbkeeper backup`` with stderr on a terminal (a pty of 160
columns, the line redrawn as it goes) and off one (nothing drawn), interleaved, reported as medians and ratios of
wall time and of CPU time (dbkeeper and pg_dump under it: on a shared machine the steadier of the two).

    python bench/progress.py                      # a throwaway PostgreSQL 15, a ~300 MB database, 5 rounds
    python bench/progress.py --mb 500 --rounds 7 --url postgresql://postgres@127.0.0.1:5432/bench --reuse

``--before SRC`` adds a third command: the same backup on a terminal with another checkout's ``src`` (say, the
main branch's) first on PYTHONPATH, to compare against the progress line it had.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import dataset  # noqa: E402
from run import compile_bytecode  # noqa: E402


def cpu() -> float:
    """CPU seconds (user + system) of every waited-for child so far: dbkeeper, and pg_dump under it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def backup(argv: list[str], env: dict[str, str], on_tty: bool) -> tuple[float, float, int]:
    """Wall seconds and CPU seconds of one run, and how many bytes it drew on the terminal."""
    drawn = 0
    c0 = cpu()
    if not on_tty:
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0, cpu() - c0, 0
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        drawn += len(chunk)
    code = proc.wait()
    wall = time.perf_counter() - t0
    os.close(master)
    if code:
        raise SystemExit(f"{argv} exited {code}")
    return wall, cpu() - c0, drawn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--url")
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--before", metavar="SRC", help="another checkout's src directory, run on a terminal too")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dbkeeper-bench-progress-"))
    work.chmod(0o755)  # the throwaway cluster runs as postgres
    cleanup: list[Callable[[], None]] = [lambda: shutil.rmtree(work, ignore_errors=True)]
    try:
        if args.url:
            url, env = args.url, dict(os.environ)
        else:
            from pg import Cluster

            cluster = Cluster.start(Path("/usr/lib/postgresql/15/bin"), work / "pg")
            cleanup.append(cluster.stop)
            url, env = cluster.url("bench"), cluster.env()
        if not (args.url and args.reuse):
            print(f"building a ~{args.mb} MB database ...", flush=True)
            os.environ.update({k: env[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD") if k in env})
            dataset.build(url, args.mb, psql=str(Path(shutil.which("psql") or "psql")))
        compile_bytecode()
        dbk = [sys.executable, "-m", "dbkeeper", "backup", url]
        here_src = str(HERE.parent / "src")
        commands = {
            "backup, no terminal": (dict(env, PYTHONPATH=here_src), False),
            "backup, progress on a 160-column pty": (dict(env, PYTHONPATH=here_src), True),
        }
        if args.before:
            commands["backup, before: its progress line on the pty"] = (dict(env, PYTHONPATH=args.before), True)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        drawn: dict[str, int] = {}
        names = list(commands)
        for i in range(args.rounds):
            order = names[i % len(names) :] + names[: i % len(names)]  # each command in each position in turn
            for name in order:
                cmd_env, tty = commands[name]
                store = work / f"store-{i}-{len(walls[name])}-{abs(hash(name))}"
                wall, used, n = backup([*dbk, "--store", str(store)], cmd_env, tty)
                shutil.rmtree(store, ignore_errors=True)
                walls[name].append(wall)
                cpus[name].append(used)
                drawn[name] = n
            print(f"round {i + 1}/{args.rounds} done", flush=True)
        base = statistics.median(walls["backup, no terminal"])
        cpu_base = statistics.median(cpus["backup, no terminal"])
        for name, times in walls.items():
            med, used = statistics.median(times), statistics.median(cpus[name])
            print(
                f"{name:<48} wall {med:6.2f}s ({med / base:5.3f})  cpu {used:6.2f}s ({used / cpu_base:5.3f})"
                f"  drew {drawn[name]} bytes"
            )
            print("    wall " + " ".join(f"{t:.2f}" for t in times))
            print("    cpu  " + " ".join(f"{t:.2f}" for t in cpus[name]))
    finally:
        for f in reversed(cleanup):
            f()


if __name__ == "__main__":
    main()
