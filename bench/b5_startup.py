"""5. Start-up: process spawn until GET /agents/runtime-status answers 200 (serve and
app), and for the app until its tray menu (dbusmenu GetLayout) answers on D-Bus. With
CLAWDOCK_BENCH_BIN_BEFORE, `serve` of that binary is measured in the same run too; with
CLAWDOCK_BENCH_NO_APP=1, `serve` only (no release build of the tray app needed)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from common import (Instance, Table, XSession, cleanup_bench, in_thread, log, median, ms,
                    subcommand, summarize_calls)

RUNS = 5


def wait_tray(session: XSession, inst: Instance, timeout: float = 30) -> tuple[float, list]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if inst.proc.poll() is not None:
            raise RuntimeError("the app exited before its tray appeared")
        labels = session.tray_menu(inst.proc.pid)
        if labels:
            return time.perf_counter(), labels
        time.sleep(0.02)
    raise RuntimeError(f"no tray menu on D-Bus within {timeout} s")


def wait_ready(api, timeout: float = 30) -> tuple[float, str]:
    """Polls GET /agents/runtime-status until its state is `ready`; (time, first state)."""
    first = None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = json.loads(api.raw("GET", "/agents/runtime-status")[1])["state"]
        first = first or state
        if state == "ready":
            return time.perf_counter(), first
        time.sleep(0.002)
    raise RuntimeError(f"runtime not ready within {timeout} s (first state {first})")


def serve_runs(inst: Instance) -> tuple[list[float], list[float], list, set]:
    """RUNS spawns of `clawdock serve`: (to first 200, to `ready`, podman calls, first states)."""
    to_api, to_ready, calls, states = [], [], [], set()
    for _ in range(RUNS):
        w0 = time.time()
        t0 = inst.spawn()
        api = inst.wait_api(interval=0.002)
        to_api.append(time.perf_counter() - t0)
        t_ready, first = wait_ready(api)
        to_ready.append(t_ready - t0)
        states.add(first)
        time.sleep(1.0)
        calls.append([(t - w0, a) for t, a in inst.counter.between(w0, time.time())])
        inst.exit_times.append(inst.terminate())
    return to_api, to_ready, calls, states


def run(args) -> list[Table]:
    before_bin = os.environ.get("CLAWDOCK_BENCH_BIN_BEFORE")
    before_api: list[float] = []
    before_exit: list[float] = []
    if before_bin:
        before = Instance("startup-before", bin_path=Path(before_bin))
        before.exit_times = []
        try:
            log(f"startup: {RUNS} x clawdock serve of {before_bin} (before this change)")
            before_api, _, _, _ = serve_runs(before)
            before_exit = before.exit_times
        finally:
            cleanup_bench(before)
    serve = Instance("startup-serve")
    with_app = not os.environ.get("CLAWDOCK_BENCH_NO_APP")
    session = XSession() if with_app else None
    app = Instance("startup-app", mode="app", session=session) if with_app else None
    # An agents.json with no agents: the app starts quietly in the tray (no window),
    # as at login. Without it (first run) the window opens.
    if app:
        (app.home / "agents.json").write_text("[]\n")
    serve_api, serve_ready, serve_exit, serve_calls, state = [], [], [], [], set()
    app_ready = []
    app_api, app_tray, app_exit, app_calls, menus = [], [], [], [], []
    try:
        log(f"startup: {RUNS} x clawdock serve (one data folder, no agents)")
        serve.exit_times = serve_exit
        serve_api, serve_ready, serve_calls, state = serve_runs(serve)
        if app:
            log(f"startup: {RUNS} x the desktop app (Xvfb + private D-Bus, tray only)")
        for _ in range(RUNS if app else 0):
            w0 = time.time()
            t0 = app.spawn()
            tray = in_thread(wait_tray, session, app)
            api = app.wait_api(interval=0.002)
            app_api.append(time.perf_counter() - t0)
            t_ready, first = wait_ready(api)
            app_ready.append(t_ready - t0)
            state.add(first)
            tray["thread"].join(40)
            if "error" in tray:
                raise tray["error"]
            t_tray, labels = tray["value"]
            app_tray.append(t_tray - t0)
            menus.append(labels)
            time.sleep(1.0)
            app_calls.append([(t - w0, a) for t, a in app.counter.between(w0, time.time())])
            app_exit.append(app.terminate())
    finally:
        cleanup_bench(*(i for i in (serve, app) if i))
        if session:
            session.close()

    t = Table(f"5. Start-up: {RUNS} runs each (medians), no agents",
              ["measure", "median", "min", "max"])
    t.add("serve: spawn -> runtime-status 200", ms(median(serve_api)), ms(min(serve_api)),
          ms(max(serve_api)))
    if before_api:
        t.add("serve before this change (CLAWDOCK_BENCH_BIN_BEFORE): spawn -> runtime-status 200",
              ms(median(before_api)), ms(min(before_api)), ms(max(before_api)))
        t.note(f"serve: first 200 now / before = "
               f"{median(serve_api) / median(before_api):.2f}x")
    t.add("serve: spawn -> runtime state `ready`", ms(median(serve_ready)),
          ms(min(serve_ready)), ms(max(serve_ready)))
    if app:
        t.add("app: spawn -> runtime-status 200", ms(median(app_api)), ms(min(app_api)),
              ms(max(app_api)))
        t.add("app: spawn -> runtime state `ready`", ms(median(app_ready)),
              ms(min(app_ready)), ms(max(app_ready)))
        t.add("app: spawn -> tray menu on D-Bus (GetLayout)", ms(median(app_tray)),
              ms(min(app_tray)), ms(max(app_tray)))
    t.add("serve: SIGTERM -> exit (no agents)", ms(median(serve_exit)), ms(min(serve_exit)),
          ms(max(serve_exit)))
    if before_exit:
        t.add("serve before this change: SIGTERM -> exit (no agents)", ms(median(before_exit)),
              ms(min(before_exit)), ms(max(before_exit)))
    if app:
        t.add("app: SIGTERM -> exit (no agents)", ms(median(app_exit)), ms(min(app_exit)),
              ms(max(app_exit)))
    t.note(f"runtime state in the first answer: {sorted(state)}. API polled every 2 ms "
           "(api.json of the new PID, then GET); the tray polled with gdbus "
           "(ListNames, GetConnectionUnixProcessID, Introspect, GetLayout) in a thread, "
           "about 20-60 ms per round, so tray times are late by up to one round.")
    rows = [("serve", serve_calls, serve_api)] + ([("app", app_calls, app_api)] if app else [])
    for name, runs, api_t in rows:
        firsts: dict[str, list[float]] = {}
        for calls in runs:
            seen = set()
            for off, args in calls:
                k = subcommand(args)
                if k not in seen:
                    seen.add(k)
                    firsts.setdefault(k, []).append(off)
        t.note(f"{name}: podman processes in the first second after the spawn: "
               f"{summarize_calls(runs[0])}; first spawn of each after the process spawn "
               "(median): " + ", ".join(f"{k} +{ms(median(v))}" for k, v in firsts.items())
               + f"; API answered +{ms(median(api_t))}.")
    if menus:
        t.note(f"tray menu: {' | '.join(menus[0][:6])}")
    t.note("Data folder reused across runs (token and instance id exist after the first); the "
           "app's has an agents.json with no agents, so it starts in the tray without a window.")
    return [t]
