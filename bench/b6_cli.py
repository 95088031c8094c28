"""6. The command line: `clawdock status` (against a running `clawdock serve`) and
`clawdock --version`, each run alternately with `podman --version`, pair by pair, so
a busy moment of the shared machine slows both sides of a pair. Wall time and peak RSS
(GNU time's %M). Then `clawdock serve`'s memory with 5 running
agents. With CLAWDOCK_BENCH_BIN_BEFORE the same for that binary in the same run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from common import (BIN, PODMAN, Instance, Table, agent_name, cleanup_bench, log, median,
                    memory_kb, ms)

PAIRS = 20
TIME = shutil.which("time")  # GNU time (Debian package `time`); without it, no peaks
AGENTS = 5
SETTLE = 5.0


def run_once(argv, env) -> tuple[float, int]:
    """(wall seconds, exit code) of one process."""
    t0 = time.perf_counter()
    rc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        stdin=subprocess.DEVNULL).returncode
    return time.perf_counter() - t0, rc


def peak_rss_kb(argv, env) -> int | None:
    """Peak RSS of one run, from GNU time's %M: a fork of this (large) Python process
    would count its own pages in the child's ru_maxrss, a fork of `time` hardly any.
    None without GNU time."""
    if TIME is None:
        return None
    out = subprocess.run([TIME, "-f", "%M", *argv], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True).stderr
    return int(out.strip().splitlines()[-1])


def pairs(argv, env) -> tuple[list[float], list[float], list[int], set]:
    """PAIRS runs of argv, each followed by `podman --version`: (ours, podman's, our peak
    RSS over 5 more runs, our exit codes). One warm-up pair first."""
    run_once(argv, env)
    run_once([PODMAN, "--version"], env)
    ours, theirs, codes = [], [], set()
    for _ in range(PAIRS):
        dt, rc = run_once(argv, env)
        ours.append(dt)
        codes.add(rc)
        theirs.append(run_once([PODMAN, "--version"], env)[0])
    peaks = [peak_rss_kb(argv, env) for _ in range(5)] if TIME else []
    return ours, theirs, peaks, codes


def measure(tag: str, binary: Path) -> dict:
    inst = Instance(f"cli-{tag}", bin_path=binary)
    try:
        inst.start()
        env = inst.env
        log(f"cli {tag}: {PAIRS} pairs each of status and --version against podman --version")
        status = pairs([str(binary), "status"], env)
        version = pairs([str(binary), "--version"], env)
        podman_peak = peak_rss_kb([PODMAN, "--version"], env)
        log(f"cli {tag}: {AGENTS} agents, then serve's memory")
        inst.create_agents([agent_name(f"c{tag[0]}", i) for i in range(AGENTS)])
        time.sleep(SETTLE)
        serve_mem = memory_kb(inst.proc.pid)
        running = inst.running_containers()
        inst.terminate()
    finally:
        cleanup_bench(inst)
    return {"status": status, "version": version, "podman_peak": podman_peak,
            "serve_mem": serve_mem, "running": running}


def mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f} MB"


def pair_ratio(ours: list[float], theirs: list[float]) -> float:
    return median([a / b for a, b in zip(ours, theirs)])


def run(args) -> list[Table]:
    results = [("now", BIN, measure("now", BIN))]
    before_bin = os.environ.get("CLAWDOCK_BENCH_BIN_BEFORE")
    if before_bin:
        results.append(("before", Path(before_bin), measure("before", Path(before_bin))))

    t = Table(
        f"6. The command line: {PAIRS} pairs each (medians), and serve with {AGENTS} agents",
        ["binary", "command", "median", "podman --version (pair)", "ratio (pair by pair)",
         "peak RSS", "podman --version peak RSS"],
    )
    for tag, _, r in results:
        name = "clawdock" if tag == "now" else "before (CLAWDOCK_BENCH_BIN_BEFORE)"
        for cmd in ("status", "version"):
            ours, theirs, peaks, codes = r[cmd]
            t.add(name, "status" if cmd == "status" else "--version", ms(median(ours)),
                  ms(median(theirs)), f"{pair_ratio(ours, theirs):.2f}x",
                  mb(median(peaks) if peaks else None), mb(r["podman_peak"]))
            if codes != {0}:
                t.note(f"{name} {cmd}: exit codes {sorted(codes)}")
    for tag, _, r in results:
        name = "clawdock" if tag == "now" else "before (CLAWDOCK_BENCH_BIN_BEFORE)"
        rss, pss = r["serve_mem"]
        t.note(f"{name} serve with {r['running']} agents running: RSS {rss / 1024:.1f} MB, "
               f"PSS {pss / 1024:.1f} MB (/proc/PID/smaps_rollup, {SETTLE:.0f} s after the "
               "agents ran)")
    t.note("ratio = median over the pairs of (clawdock's time / the podman --version run "
           "right after it). `status` asks the running serve over HTTP (api.json, token) "
           "and prints the runtime and agents; peak RSS = GNU time's %M, median of 5 "
           "runs ('-' without GNU time, Debian package `time`).")
    return [t]
