"""8. The tray app's weight (issue 33): its whole process tree idle in the tray with 2
agents running and no window ever opened (launched as the login item launches it:
`clawdock --at-login`, the agents restored from the last quit), the window's cost while
it is open (opened from the tray menu over D-Bus), and what is given back once it is
closed (its close button, as a window manager sends it), 10 s and 130 s after. With
CLAWDOCK_BENCH_BIN_BEFORE (a build of main before the split), that build's figures beside
these, in the same run.

PSS from /proc/PID/smaps_rollup, summed over the app's process tree: PSS shares each page
among the processes that map it, so the sum is what the tree holds. The engine service
Clawdock may own (`podman system service`, Podman's engine, not Clawdock's UI; when the
user's podman.socket answers there is none) is reported apart, and the tree is given
without it and with it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import (Instance, Table, XSession, agent_name, cleanup_bench, descendants, log,
                    memory_kb, pss_by_mapping, ratio)

AGENTS = 2
SETTLE = 5.0
# After the window is opened: drawn, its page loaded and idle.
OPEN_SETTLE = 10.0
# After it is closed: 10 s, and past the 120 s after which the build before the split
# freed a hidden window's web view.
CLOSED_EARLY = 10.0
CLOSED_LATE = 130.0


def kind(pid: int, app: int, comm: str) -> str:
    if pid == app:
        return "app"
    if comm.startswith("WebKit") or comm == "clawdock-window":
        return "window"
    if comm.startswith("podman"):
        return "engine"
    return "other"


def tree(app: int) -> dict:
    """PSS and RSS (kB) of the app's tree by kind, and each process's PSS."""
    procs = [(app, "clawdock-app")] + descendants(app)
    out = {"app": 0, "window": 0, "engine": 0, "other": 0, "rss": 0, "procs": []}
    for pid, comm in procs:
        rss, pss = memory_kb(pid)
        out[kind(pid, app, comm)] += pss
        out["rss"] += rss
        out["procs"].append((comm, pss))
    out["clawdock"] = out["app"] + out["window"] + out["other"]
    out["all"] = out["clawdock"] + out["engine"]
    return out


def wait(what: str, check, limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not within {limit:.0f} s")


def measure(tag: str, bin_path: Path | None, idle: float) -> dict:
    session = XSession()
    app = Instance(f"tray-{tag}", mode="app", session=session, bin_path=bin_path,
                   app_args=["--at-login"])
    # Two agents that ran at the last quit, made by `serve` of the same build on the same
    # data folder; the app, launched as at login, restores them.
    serve = Instance(f"tray-{tag}-serve", bin_path=bin_path, root=app.root,
                     port_base=app.port_base)
    try:
        serve.start()
        serve.create_agents([agent_name(f"t{tag[0]}", i) for i in range(AGENTS)])
        serve.terminate()
        app.start()
        pid = app.proc.pid
        ids = [a["id"] for a in app.api.agents()]
        app.wait_agents(ids, "running", timeout=120)
        wait("the tray on D-Bus", lambda: session.tray_menu(pid))
        time.sleep(SETTLE)
        log(f"{app.tag}: idle in the tray {idle:.0f} s, no window ever opened")
        time.sleep(idle)
        r = {"idle": tree(pid), "by_mapping": pss_by_mapping(pid, 6),
             "running": app.running_containers()}
        log(f"{app.tag}: opening the window from the tray")
        session.click(pid, "Open Clawdock")
        wait("the window on screen", session.window_mapped)
        wait("the web view's process",
             lambda: any(c.startswith("WebKitWeb") for _, c in descendants(pid)))
        time.sleep(OPEN_SETTLE)
        r["open"] = tree(pid)
        log(f"{app.tag}: closing the window")
        if not session.close_window():
            raise RuntimeError("no window to close")
        closed = time.monotonic()
        wait("the window gone", lambda: not session.window_mapped(), 15)
        time.sleep(max(0.0, CLOSED_EARLY - (time.monotonic() - closed)))
        r["closed"] = tree(pid)
        log(f"{app.tag}: waiting until {CLOSED_LATE:.0f} s after the close")
        time.sleep(max(0.0, CLOSED_LATE - (time.monotonic() - closed)))
        r["late"] = tree(pid)
        r["alive"] = app.proc.poll() is None
        app.terminate()
        return r
    finally:
        cleanup_bench(app, serve)
        session.close()


def mb(kb) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f} MB"


def run(args) -> list[Table]:
    idle = min(args.idle, 30.0)
    before_bin = os.environ.get("CLAWDOCK_BENCH_BIN_BEFORE")
    results = []
    if before_bin:
        results.append(("before", measure("before", Path(before_bin), idle)))
    results.append(("now", measure("now", None, idle)))

    def fig(r, point, key):
        return r[point][key]

    rows = [
        ("tray idle: the app process", lambda r: fig(r, "idle", "app")),
        ("tray idle: Clawdock's tree, engine left out (goal <= 30 MB)",
         lambda r: fig(r, "idle", "clawdock")),
        ("the engine service Clawdock owns (podman system service)",
         lambda r: fig(r, "idle", "engine")),
        ("tray idle: the tree with the engine", lambda r: fig(r, "idle", "all")),
        ("window open: the tree, engine left out", lambda r: fig(r, "open", "clawdock")),
        ("the window's cost while open (open - idle)",
         lambda r: fig(r, "open", "clawdock") - fig(r, "idle", "clawdock")),
        (f"window closed +{CLOSED_EARLY:.0f} s: the tree, engine left out",
         lambda r: fig(r, "closed", "clawdock")),
        (f"given back +{CLOSED_EARLY:.0f} s after closing (open - closed)",
         lambda r: fig(r, "open", "clawdock") - fig(r, "closed", "clawdock")),
        (f"window closed +{CLOSED_LATE:.0f} s: the tree, engine left out",
         lambda r: fig(r, "late", "clawdock")),
        (f"given back +{CLOSED_LATE:.0f} s after closing (open - closed)",
         lambda r: fig(r, "open", "clawdock") - fig(r, "late", "clawdock")),
    ]
    names = [n for n, _ in results]
    headers = ["PSS", *names] + (["now / before"] if len(results) == 2 else [])
    t = Table(f"8. The tray app's weight: {AGENTS} agents running, launched at login, "
              f"{idle:.0f} s idle", headers)
    for label, get in rows:
        values = [get(r) for _, r in results]
        cells = [mb(v) for v in values]
        if len(values) == 2:
            cells.append(ratio(values[1], values[0]))
        t.add(label, *cells)
    t.note("PSS from /proc/PID/smaps_rollup, summed over the app's process tree (the "
           "process `clawdock --at-login` became and its descendants). 'engine left out': "
           "without the `podman system service` Clawdock starts when no podman.socket "
           "answers; it is Podman's engine (the containers' API), not Clawdock's UI, and "
           "`clawdock serve` owns the same one.")
    t.note(f"The window: opened with the tray's 'Open Clawdock' (dbusmenu Event), settled "
           f"{OPEN_SETTLE:.0f} s; closed with WM_DELETE_WINDOW (tests/x11/close-window.py), "
           f"what a window manager's close button sends. Before the split the app hid the "
           f"window and freed its web view 120 s later; since, the window's process ends.")
    for name, r in results:
        for point in ("idle", "open", "closed", "late"):
            procs = ", ".join(f"{c} {kb / 1024:.1f}" for c, kb in r[point]["procs"])
            t.note(f"{name}, {point}: processes (PSS MB): {procs}; RSS of the tree "
                   f"{mb(r[point]['rss'])}")
        t.note(f"{name}: largest PSS shares of the app process, idle: "
               + ", ".join(f"{m} {kb / 1024:.1f} MB" for m, kb in r["by_mapping"])
               + f"; {r['running']} agent containers running; app alive at the end: "
               f"{r['alive']}")
    return [t]
