"""2. Idle cost with 5 running agents: `clawdock serve`, `clawdock serve` with the stats
stream open (what the window asks while it shows the agents), the desktop app with its
window open (first run opens it), and the desktop app started quietly in the tray
(window closed: a second launch of the same data folder, which restores the 5 agents).
With CLAWDOCK_BENCH_BIN_BEFORE set, the two serve rows through that binary too; with
CLAWDOCK_BENCH_NO_APP=1, no app rows (no release build of the tray app needed)."""

from __future__ import annotations

import http.client
import os
import threading
import time

from common import (CLK_TCK, Instance, Table, XSession, agent_name, cleanup_bench, descendants,
                    cpu_ticks, log, memory_kb, pss_by_mapping, summarize_calls)

AGENTS = 5
SETTLE = 5.0


def is_webkit(comm: str) -> bool:
    """The window's processes: WebKit's, and since issue 33 the window's own."""
    return comm.startswith("WebKit") or comm == "clawdock-window"


def measure_idle(inst: Instance, seconds: float) -> dict:
    pid = inst.proc.pid
    kids0 = descendants(pid)
    ticks0 = {p: cpu_ticks(p) for p, _ in kids0}
    app0 = cpu_ticks(pid)
    t0 = time.time()
    log(f"{inst.tag}: idle {seconds:.0f} s")
    time.sleep(seconds)
    t1 = time.time()
    app1 = cpu_ticks(pid)
    kids1 = descendants(pid)
    spawned = inst.counter.between(t0, t1)
    web, other = [], []
    web_cpu = other_cpu = 0
    for p, comm in kids1:
        now = cpu_ticks(p)[0]
        before = ticks0.get(p, (0, 0))[0]
        if is_webkit(comm):
            web.append((p, comm))
            web_cpu += now - before
        else:
            other.append((p, comm))
            other_cpu += now - before
    mem_app = memory_kb(pid)
    by_mapping = pss_by_mapping(pid)
    mem_web = [memory_kb(p) for p, _ in web]
    return {
        "seconds": t1 - t0,
        "spawned": spawned,
        "app_cpu": (app1[0] - app0[0]) / CLK_TCK,
        "reaped_cpu": (app1[1] - app0[1]) / CLK_TCK,
        "web_cpu": web_cpu / CLK_TCK,
        "other_cpu": other_cpu / CLK_TCK,
        "app_mem": mem_app,
        "by_mapping": by_mapping,
        "web_mem": (sum(r for r, _ in mem_web), sum(p for _, p in mem_web)),
        "web": [c for _, c in web],
        "other": [c for _, c in other],
        "running": inst.running_containers(),
        "window": inst.session.window_mapped() if inst.session else None,
    }


class StatsStream:
    """GET /agents/stats held open and read in a thread, as the window holds it."""

    def __init__(self, inst: Instance):
        self.samples = 0
        self.conn = http.client.HTTPConnection(inst.api.host, inst.api.port, timeout=30)
        self.conn.request("GET", "/agents/stats", headers=dict(inst.api.auth))
        self.resp = self.conn.getresponse()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for line in self.resp:
                if line.startswith(b"data:"):
                    self.samples += 1
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            # Closed under the reader (http.client drops its file on close).
            pass

    def close(self):
        self.conn.close()


def serve_rows(tag: str, bin_path, idle: float, rows: list, lives: list):
    serve = Instance(f"idle-serve{tag}", bin_path=bin_path)
    label = f" ({tag.strip('-')})" if tag else ""
    try:
        t_launch = time.time()
        serve.start()
        serve.create_agents([agent_name("i", i) for i in range(AGENTS)])
        time.sleep(SETTLE)
        rows.append((f"clawdock serve{label}", measure_idle(serve, idle)))
        stream = StatsStream(serve)
        time.sleep(SETTLE)
        r = measure_idle(serve, idle)
        r["samples"] = stream.samples
        stream.close()
        rows.append((f"serve, stats stream open{label}", r))
        lives.append((f"serve{label}, launch to end of idle",
                      serve.counter.between(t_launch, time.time())))
        serve.terminate()
        serve.cleanup()
    finally:
        cleanup_bench(serve)


def mb(kb: int) -> str:
    return f"{kb / 1024:.1f} MB"


def run(args) -> list[Table]:
    idle = args.idle
    rows, lives = [], []
    session = None
    app = None
    before = os.environ.get("CLAWDOCK_BENCH_BIN_BEFORE")
    if before:
        serve_rows("-before", before, idle, rows, lives)
    serve_rows("", None, idle, rows, lives)
    try:
        if os.environ.get("CLAWDOCK_BENCH_NO_APP"):
            raise StopIteration
        # the app, first run: the window opens
        session = XSession()
        app = Instance("idle-app", mode="app", session=session)
        t_launch = time.time()
        app.start()
        app.create_agents([agent_name("w", i) for i in range(AGENTS)])
        time.sleep(SETTLE)
        rows.append(("app, window open (first run)", measure_idle(app, idle)))
        lives.append(("app first run, launch to end of idle",
                      app.counter.between(t_launch, time.time())))
        log("idle-app: SIGTERM; launching again (agents.json exists: tray only, "
            "the 5 agents are restored)")
        t_term = time.time()
        app.terminate()
        lives.append(("app first run, SIGTERM to exit", app.counter.between(t_term, time.time())))
        t_launch = time.time()
        app.start()
        ids = [a["id"] for a in app.api.agents()]
        app.wait_agents(ids, "running", timeout=120)
        time.sleep(SETTLE)
        rows.append(("app, window closed (tray only)", measure_idle(app, idle)))
        lives.append(("app second run (restores the agents), launch to end of idle",
                      app.counter.between(t_launch, time.time())))
        app.terminate()
    except StopIteration:
        log("idle: CLAWDOCK_BENCH_NO_APP set, no app rows")
    finally:
        cleanup_bench(*(i for i in (app,) if i))
        if session:
            session.close()

    t = Table(
        f"2. Idle cost: {AGENTS} running agents, {idle:.0f} s idle each",
        ["instance", "podman spawned", "CPU app", "CPU webview",
         "CPU podman children (events; the engine service)", "CPU/min, all", "RSS app",
         "PSS app", "RSS webview", "PSS webview"],
    )
    for name, r in rows:
        total = r["app_cpu"] + r["web_cpu"] + r["other_cpu"] + r["reaped_cpu"]
        t.add(name, str(len(r["spawned"])), f"{r['app_cpu']:.2f} s",
              f"{r['web_cpu']:.2f} s" if r["web"] else "-",
              f"{r['other_cpu']:.2f} s",
              f"{total * 60 / r['seconds']:.2f} s",
              mb(r["app_mem"][0]), mb(r["app_mem"][1]),
              mb(r["web_mem"][0]) if r["web"] else "-",
              mb(r["web_mem"][1]) if r["web"] else "-")
    t.note("podman spawned = podman processes Clawdock started during the idle window "
           "(wrapper log; CLAWDOCK_PODMAN). CPU = utime+stime seconds used in the idle window, "
           "from /proc/PID/stat (10 ms ticks): the app process, its WebKit children, and its "
           "long-lived podman child (`podman events` before issue 24; the `podman system "
           "service` Clawdock owns since, which does the engine's work for every request); "
           "'CPU/min, all' is their sum plus children reaped in the window (the podman "
           "processes of each call), per minute.")
    t.note("RSS/PSS from /proc/PID/smaps_rollup at the end of the window; webview = the "
           "WebKitWebProcess + WebKitNetworkProcess processes, summed, and since issue 33 "
           "the window's own process (`clawdock-window`), which holds the web view.")
    for name, r in rows:
        kids = sorted(set(r["web"] + r["other"]))
        t.note(f"{name}: children {', '.join(kids) or 'none'}; "
               f"reaped children CPU {r['reaped_cpu']:.2f} s; "
               f"{r['running']} agent containers running; "
               + ("" if r["window"] is None else
                  f"Clawdock window {'viewable' if r['window'] else 'not mapped'} (xwininfo); ")
               + (f"{r['samples']} stats samples read; " if "samples" in r else "")
               + f"podman calls in the window: {summarize_calls(r['spawned'])}")
    for name, r in rows:
        t.note(f"{name}: largest PSS shares of the app process: "
               + ", ".join(f"{m} {kb / 1024:.1f} MB" for m, kb in r["by_mapping"]))
    for name, calls in lives:
        t.note(f"podman calls, {name}: {len(calls)} ({summarize_calls(calls)})")
    t.note(f"Each instance settles {SETTLE:.0f} s after its agents run before the window starts.")
    return [t]
