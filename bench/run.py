#!/usr/bin/env python3
"""Runs the Clawdock benchmarks and prints a table per benchmark.

    bench/run.py [--only NAME[,NAME...]] [--idle SECONDS] [--markdown FILE]

Names: status, idle, shutdown, create, startup, cli, reconcile, tray (or 1-8). Needs the release binary
(target/release/clawdock, or CLAWDOCK_BENCH_BIN) and the test images
(tests/images/build-test-images.sh); scripts/bench.sh does both. Every benchmark
cleans up after itself: temp data folders, SIGTERM to the servers/apps, and
`podman rm -f` of containers labelled with the instance's io.clawdock.home.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import b1_status  # noqa: E402
import b2_idle  # noqa: E402
import b3_shutdown  # noqa: E402
import b4_create  # noqa: E402
import b5_startup  # noqa: E402
import b6_cli  # noqa: E402
import b7_reconcile  # noqa: E402
import b8_tray  # noqa: E402
import common  # noqa: E402

BENCHES = [
    ("status", b1_status),
    ("idle", b2_idle),
    ("shutdown", b3_shutdown),
    ("create", b4_create),
    ("startup", b5_startup),
    ("cli", b6_cli),
    ("reconcile", b7_reconcile),
    ("tray", b8_tray),
]


def machine_line() -> str:
    try:
        pv = subprocess.run([common.PODMAN, "--version"], capture_output=True,
                            text=True).stdout.strip()
    except OSError:
        pv = "podman missing"
    try:
        distro = next(line.split("=", 1)[1].strip('"\n')
                      for line in open("/etc/os-release") if line.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        distro = platform.system()
    return (f"{os.cpu_count()} cores, {pv}, {distro}, kernel {platform.release()}, "
            f"Python {platform.python_version()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated benchmark names or numbers")
    ap.add_argument("--idle", type=float, default=60.0,
                    help="idle window of each idle measurement, seconds (default 60; the "
                         "idle benchmark takes about 3.5 x this)")
    ap.add_argument("--markdown", help="also write the tables as Markdown to this file")
    args = ap.parse_args()

    chosen = BENCHES
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        chosen = []
        for w in wanted:
            match = [b for i, b in enumerate(BENCHES) if w in (b[0], str(i + 1))]
            if not match:
                ap.error(f"unknown benchmark {w!r}; names: {', '.join(n for n, _ in BENCHES)}")
            chosen += match

    if not common.BIN.exists():
        print(f"error: {common.BIN} is missing; build it with "
              "`cargo build --release -p clawdock` (scripts/bench.sh does)", file=sys.stderr)
        return 2
    missing = [i for i in (common.IMAGE, common.STUBBORN_IMAGE)
               if common.podman("image", "exists", i, check=False).returncode != 0]
    if missing:
        print(f"error: missing images {missing}; run tests/images/build-test-images.sh",
              file=sys.stderr)
        return 2

    # SIGTERM/SIGHUP end the run through the same cleanup as Ctrl-C.
    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)

    began = time.monotonic()
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (f"Clawdock benchmarks, {stamp}\nmachine: {machine_line()}\nbinary: {common.BIN}"
              f"\nload average at start: {load0}")
    print(header, flush=True)
    tables, failed = [], []
    try:
        for name, mod in chosen:
            print(f"\n== {name} ==", flush=True)
            t0 = time.monotonic()
            try:
                got = mod.run(args)
            except KeyboardInterrupt:
                raise
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                failed.append(name)
                continue
            finally:
                common.cleanup_all()
            common.log(f"{name} took {time.monotonic() - t0:.0f} s")
            for t in got:
                print("\n" + t.text(), flush=True)
            tables += got
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}); cleaning up", file=sys.stderr)
        failed.append("interrupted")
    finally:
        common.cleanup_all()

    total = time.monotonic() - began
    load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n\nRESULTS ({total:.0f} s in all; load average at start {load0}, at end {load1})\n")
    for t in tables:
        print(t.text() + "\n")
    if args.markdown:
        md = [f"Run {stamp}, {total:.0f} s in all. Machine: {machine_line()}. "
              f"Load average (1, 5, 15 min) at start {load0}, at end {load1}.", ""]
        md += [t.markdown() + "\n" for t in tables]
        Path(args.markdown).write_text("\n".join(md))
        print(f"markdown written to {args.markdown}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
