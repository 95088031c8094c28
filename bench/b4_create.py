"""4. Create: POST /agents/create until the agent is `running` (its gateway answered
/healthz), against a bare `podman run -d -p 127.0.0.1:PORT:18789 <image>` plus the
same health wait, polled every 50 ms, 100 ms and 1 s. With CLAWDOCK_BENCH_BIN_BEFORE
set, the same creates through that binary too (a change's "before", in the same run)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import (BENCH_LABEL, IMAGE, Instance, Table, agent_name, cleanup_bench, log,
                    median, ms, next_port_base, podman, ratio, secs, subcommand,
                    summarize_calls, wait_http)

RUNS = 5


def clawdock_create(inst: Instance, name: str) -> tuple[float, list]:
    t_wall = time.time()
    t0 = time.perf_counter()
    status, body = inst.api.call("POST", "/agents/create", {"name": name})
    if status != 201:
        raise RuntimeError(f"create {name}: {status} {body}")
    aid = body["agent"]["id"]
    while True:
        status, body = inst.api.call("GET", f"/agents/{aid}")
        agent = body["agent"] if isinstance(body, dict) and "agent" in body else body
        if agent["status"] == "running":
            dt = time.perf_counter() - t0
            break
        if agent["status"] == "error":
            raise RuntimeError(f"create {name}: {agent.get('error')}")
        if time.perf_counter() - t0 > 60:
            raise RuntimeError(f"create {name}: not running after 60 s")
        time.sleep(0.01)
    spawned = inst.counter.between(t_wall, time.time())
    return dt, [(t - t_wall, args) for t, args in spawned]


def bare_run(name: str, port: int, interval: float) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    podman("run", "-d", "--name", name, "--label", BENCH_LABEL,
           "-p", f"127.0.0.1:{port}:18789", IMAGE)
    t_run = time.perf_counter() - t0
    t_ok, polls = wait_http(port, interval=interval)
    return t_ok - t0, t_run, polls


def creates(bin_path: Path | None, tag: str, prefix: str) -> tuple[list[float], list]:
    """1 warm-up + RUNS creates, one at a time, through one Clawdock."""
    inst = Instance(tag, bin_path=bin_path)
    times, calls = [], []
    try:
        inst.start()
        log(f"create ({tag}): 1 warm-up + {RUNS} creates through Clawdock, one at a time")
        clawdock_create(inst, agent_name(prefix, 99))  # warm-up: first create probes the host
        for i in range(RUNS):
            dt, spawned = clawdock_create(inst, agent_name(prefix, i))
            times.append(dt)
            calls.append(spawned)
        inst.terminate()
        inst.cleanup()
    finally:
        cleanup_bench(inst)
    return times, calls


def run(args) -> list[Table]:
    before_bin = os.environ.get("CLAWDOCK_BENCH_BIN_BEFORE")
    before: list[float] = []
    if before_bin:
        before, _ = creates(Path(before_bin), "before", "p")
    base_port = next_port_base()
    bare50, bare100, bare1000, run_only, polls = [], [], [], [], []
    try:
        clawdock, calls = creates(None, "create", "c")
        log(f"create: 1 warm-up + {RUNS} bare podman run + health polls at 50 ms, 100 ms and 1 s")
        k = 0
        for interval, out in ((0.05, None), (0.05, bare50), (0.1, bare100), (1.0, bare1000)):
            for i in range(RUNS if out is not None else 1):
                name = agent_name("b", k)
                dt, t_run, n = bare_run(name, base_port + k, interval)
                k += 1
                if out is not None:
                    out.append(dt)
                    run_only.append(t_run)
                    polls.append(n)
                podman("rm", "-f", "-t", "0", name)
    finally:
        cleanup_bench()

    c, b100, b1000 = median(clawdock), median(bare100), median(bare1000)
    b50 = median(bare50)
    t = Table(f"4. Create: until the gateway answers /healthz, stand-in image, {RUNS} runs each "
              "(medians)",
              ["measure", "median", "min", "max", "ratio (Clawdock / this)"])
    t.add("Clawdock POST /agents/create -> running", secs(c), secs(min(clawdock)),
          secs(max(clawdock)), "1.00x")
    if before:
        t.add("Clawdock before this change (CLAWDOCK_BENCH_BIN_BEFORE)", secs(median(before)),
              secs(min(before)), secs(max(before)), ratio(c, median(before)))
    t.add("podman run -d + /healthz polled every 50 ms", secs(b50), secs(min(bare50)),
          secs(max(bare50)), ratio(c, b50))
    t.add("podman run -d + /healthz polled every 100 ms", secs(b100), secs(min(bare100)),
          secs(max(bare100)), ratio(c, b100))
    t.add("podman run -d + /healthz polled every 1 s (the replaced runtime)", secs(b1000),
          secs(min(bare1000)), secs(max(bare1000)), ratio(c, b1000))
    t.add("podman run -d alone (returned)", secs(median(run_only)), secs(min(run_only)),
          secs(max(run_only)), ratio(c, median(run_only)))
    first_hit = sum(1 for n in polls if n == 1)
    slow = sum(1 for x in clawdock if x > 1.0)
    t.note("Clawdock polls the gateway's /healthz right after the start returns, then "
           "every 50 ms for 2 s, then doubling to 1 s (before issue 24: 50 ms doubling "
           "from the first). In the bare runs the first poll right after "
           f"`podman run -d` returned succeeded in {first_hit} of {len(polls)} (polls needed: "
           f"{polls}); {slow} of {len(clawdock)} Clawdock creates took over 1 s. "
           "The client polls GET /agents/{id} every 10 ms.")
    t.note("podman processes per Clawdock create: "
           + "; ".join(f"{len(s)} ({summarize_calls(s)})" for s in calls[:1])
           + f"; all runs: {[len(s) for s in calls]}. Clawdock's `create` carries labels, two "
           "volumes, env, hostname and a health command; the bare run has only the port.")
    offsets: dict[str, list[float]] = {}
    for run_calls in calls:
        for off, args in run_calls:
            offsets.setdefault(subcommand(args), []).append(off)
    t.note("when Clawdock spawned each podman process, after the POST (median): "
           + ", ".join(f"{k} +{ms(median(v))}" for k, v in offsets.items())
           + f"; running seen at +{ms(c)}.")
    t.note("One warm-up run of each (not counted): Clawdock's first create also runs "
           "`podman info` once to probe the host.")
    return [t]
