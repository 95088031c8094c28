"""1. Status latency: GET /agents and GET /agents/runtime-status with 20 running agents,
against the podman processes the replaced runtime ran per request."""

from __future__ import annotations

import json
import os
import time

from common import (FAKE_PODMAN, PODMAN, Instance, Table, agent_name, cleanup_bench, log,
                    median, ms, p99, ratio, summarize_calls, temp_root, time_process)

AGENTS = 20
REQUESTS = 1000
WARMUP = 20
PROCESS_RUNS = 20


def run(args) -> list[Table]:
    inst = Instance("status")
    try:
        inst.start()
        log(f"creating {AGENTS} agents (all at once)")
        created = inst.create_agents([agent_name("s", i) for i in range(AGENTS)])
        running = inst.running_containers()
        log(f"{running} containers running after {created:.1f} s; timing requests")
        api = inst.api
        assert api is not None

        results = {}
        t_begin = time.time()
        for path in ("/agents", "/agents/runtime-status"):
            for _ in range(WARMUP):
                status, _ = api.raw("GET", path)
                assert status == 200, (path, status)
            times = []
            size = 0
            connects_before = api.connects
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                status, body = api.raw("GET", path)
                times.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"GET {path}: {status}")
                size = len(body)
            results[path] = (times, size, api.connects - connects_before)
        t_end = time.time()
        spawned = inst.counter.between(t_begin, t_end)
        n_agents = len(json.loads(api.raw("GET", "/agents")[1])["agents"])

        log("timing the podman processes the replaced runtime ran per request")
        ps = [time_process([PODMAN, "ps", "-a", "--format", "json"]) for _ in range(PROCESS_RUNS)]
        ps_rows = len(json.loads(os.popen(f"{PODMAN} ps -a --format json").read() or "[]"))
        ml = [time_process([PODMAN, "machine", "list", "--format", "json"])
              for _ in range(PROCESS_RUNS)]
        fake_root = temp_root("fakepodman")
        state = fake_root / "state.json"
        state.write_text(json.dumps({"version": "4.3.1", "machines": [{
            "Name": "podman-machine-default", "Default": True, "Running": True,
            "Starting": False, "VMType": "qemu", "CPUs": 2, "Memory": "2147483648",
            "DiskSize": "107374182400"}]}))
        fake_env = {**os.environ, "FAKE_PODMAN_STATE": str(state)}
        fml = [time_process([str(FAKE_PODMAN), "machine", "list", "--format", "json"], fake_env)
               for _ in range(PROCESS_RUNS)]
        inst.terminate()
    finally:
        cleanup_bench(inst)

    ps_med = median([t for t, _, _ in ps])
    ml_med = median([t for t, _, _ in ml])
    fml_med = median([t for t, _, _ in fml])
    ml_rc = {rc for _, rc, _ in ml}
    ml_err = ml[0][2]
    fml_rc = {rc for _, rc, _ in fml}

    t = Table(
        f"1. Status latency: {n_agents} agents (containers running), "
        f"{REQUESTS} sequential requests per route on one keep-alive connection",
        ["measure", "median", "p99", "ratio: ps", "ratio: ps + machine list (real)",
         "ratio: ps + machine list (fake)"],
    )
    for path, (times, size, connects) in results.items():
        med = median(times)
        t.add(f"GET {path} ({size} B)", ms(med), ms(p99(times)), ratio(ps_med, med),
              ratio(ps_med + ml_med, med), ratio(ps_med + fml_med, med))
    t.add(f"process: podman ps -a --format json ({ps_rows} containers)", ms(ps_med),
          ms(p99([x for x, _, _ in ps])), "", "", "")
    t.add(f"process: podman machine list --format json (real, rc={sorted(ml_rc)})",
          ms(ml_med), ms(p99([x for x, _, _ in ml])), "", "", "")
    t.add(f"process: fake podman machine list (Python, rc={sorted(fml_rc)})", ms(fml_med),
          ms(p99([x for x, _, _ in fml])), "", "", "")
    t.add("podman processes spawned by Clawdock during the "
          f"{2 * (REQUESTS + WARMUP)} requests", str(len(spawned)), "", "", "", "")
    t.note(f"ratio = podman process median / API median; processes timed {PROCESS_RUNS} times "
           "each (median; their p99 of 20 runs is the slowest run), run by the benchmark "
           "from Python as the replaced runtime ran them.")
    t.note(f"real `podman machine list` as root fails fast: \"{ml_err}\" (rc {sorted(ml_rc)}); "
           "its time is that of the error. The fake podman "
           "(tests/fake-podman, a Python script, one running machine) answers like podman "
           "on macOS would; most of its time is Python start-up.")
    t.note(f"{AGENTS} agents created in {created:.1f} s (all POSTed at once), "
           f"{running} containers running; {WARMUP} warm-up requests per route not timed; "
           f"reconnects during timing: {sum(c for _, _, c in results.values())}.")
    if spawned:
        t.note("podman calls during the requests: " + summarize_calls(spawned))
    return [t]
