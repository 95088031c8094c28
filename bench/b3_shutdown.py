"""3. Shutdown: 1, 5 and 10 agents on the stubborn image (PID 1 ignores SIGTERM) with
CLAWDOCK_STOP_TIMEOUT=2. Clawdock's POST /shutdown against stopping the same containers
with `podman stop -t 2`, one by one (what the replaced runtime did) and, for scale, all
in one podman call. With CLAWDOCK_BENCH_BIN_BEFORE, the binary before this change is
measured in the same run too."""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import (PODMAN, STUBBORN_IMAGE, Instance, Table, agent_name, cleanup_bench, log,
                    podman, ratio, secs, wait_http)

COUNTS = (1, 5, 10)
STOP = 2


def restart(names: list[str], ports: list[int]) -> None:
    """Starts the stopped containers again and waits until each gateway answers, so
    its SIGTERM trap is installed."""
    podman("start", *names)
    for p in ports:
        wait_http(p, interval=0.05)


def clawdock_shutdown(inst: Instance, n: int, tag: str):
    """n agents on `inst`, then POST /shutdown: (answered, exited, report, running
    after, container names, ports)."""
    inst.start()
    names = [agent_name(f"{tag}{n}-", i) for i in range(n)]
    inst.create_agents(names)
    agents = inst.api.agents()
    containers = [f"clawdock-{a['name']}" for a in agents]
    ports = [a["port"] for a in agents]
    log(f"shutdown{n} ({tag}): {inst.running_containers()} running; POST /shutdown")
    t0 = time.perf_counter()
    status, body = inst.api.call("POST", "/shutdown")
    t_answer = time.perf_counter() - t0
    inst.api.close()
    inst.proc.wait(60)
    t_exit = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"POST /shutdown: {status} {body}")
    return t_answer, t_exit, body.get("report", {}), inst.running_containers(), containers, ports


def run(args) -> list[Table]:
    before_bin = os.environ.get("CLAWDOCK_BENCH_BIN_BEFORE")
    before: dict[int, float] = {}
    rows = []
    for n in COUNTS:
        if before_bin:
            old = Instance(f"shutdown-before{n}", image=STUBBORN_IMAGE, stop_timeout=STOP,
                           bin_path=Path(before_bin))
            try:
                before[n] = clawdock_shutdown(old, n, "b")[0]
            finally:
                cleanup_bench(old)
        inst = Instance(f"shutdown{n}", image=STUBBORN_IMAGE, stop_timeout=STOP)
        try:
            t_answer, t_exit, report, left, containers, ports = clawdock_shutdown(inst, n, "d")

            log(f"shutdown{n}: the same containers, podman stop -t {STOP} one by one")
            restart(containers, ports)
            t0 = time.perf_counter()
            for c in containers:
                podman("stop", "-t", str(STOP), c)
            t_seq = time.perf_counter() - t0

            restart(containers, ports)
            t0 = time.perf_counter()
            podman("stop", "-t", str(STOP), *containers)
            t_one = time.perf_counter() - t0
            rows.append((n, t_answer, t_exit, report, left, t_seq, t_one))
        finally:
            cleanup_bench(inst)

    t = Table(
        f"3. Shutdown: stubborn agents (ignore SIGTERM), CLAWDOCK_STOP_TIMEOUT={STOP}",
        ["agents", "Clawdock POST /shutdown answered", "process exited",
         f"podman stop -t {STOP} one by one", "ratio (one by one / Clawdock)",
         f"one `podman stop -t {STOP}` of all", "ratio (all-in-one / Clawdock)"],
    )
    for n, t_answer, t_exit, report, left, t_seq, t_one in rows:
        t.add(str(n), secs(t_answer), secs(t_exit), secs(t_seq), ratio(t_seq, t_answer),
              secs(t_one), ratio(t_one, t_answer))
    one = rows[0][1]
    t.note("Clawdock shutdown(n) / shutdown(1): " + ", ".join(
        f"{n}: {t_answer / one:.2f}x" for n, t_answer, *_ in rows))
    if before:
        t.note("Before this change (CLAWDOCK_BENCH_BIN_BEFORE), POST /shutdown answered: " + ", ".join(
            f"{n} agent(s) {secs(v)}" for n, v in before.items())
            + "; shutdown(n) / shutdown(1): " + ", ".join(
                f"{n}: {v / before[COUNTS[0]]:.2f}x" for n, v in before.items()))
    for n, _, _, report, left, _, _ in rows:
        t.note(f"{n} agent(s): report stopped={len(report.get('stopped', []))}, "
               f"killed={report.get('killed')}, elapsedMs={report.get('elapsedMs')}; "
               f"containers still running after exit: {left}")
    t.note("Clawdock: `clawdock serve`, POST /shutdown timed until its answer (the agents' "
           "containers have stopped) and until the process exited. Baselines stop the same "
           f"containers after `{PODMAN} start` and a /healthz answer from each.")
    return [t]
