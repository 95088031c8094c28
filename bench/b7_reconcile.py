"""7. The reconciler (issue 29): how long a death that no event tells takes to be seen,
and what looking again costs while idle. `clawdock serve` with 2 agents talks to its own
`podman system service` through a small proxy that holds the event stream (accepted,
never answered: every other request passes), so only the reconciler's listing can see a
container killed from outside. Idle cost: requests to the engine and Clawdock's CPU per
minute, with the reconciler at its default period (10 s) and effectively off
(CLAWDOCK_RESYNC_SECS=3600), events flowing in both."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path

from common import (CLK_TCK, Instance, Table, agent_name, cpu_ticks, log, median, podman,
                    ratio, secs, temp_root)

AGENTS = 2
KILLS = 5


class HoldingProxy:
    """A Unix socket proxy to the engine that never answers an events request and
    counts every other request by `METHOD path` (query left out)."""

    def __init__(self, listen: Path, upstream: Path, hold_events: bool):
        self.listen, self.upstream, self.hold_events = listen, upstream, hold_events
        self.seen: list[tuple[float, str]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def main():
            server = await asyncio.start_unix_server(self._serve, path=str(self.listen))
            ready.set()
            async with server:
                await server.serve_forever()

        self.loop.run_until_complete(main())

    async def _serve(self, reader, writer):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(4096)
            if not chunk:
                writer.close()
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, path = (line.split(" ") + ["", ""])[:2]
        path = path.split("?", 1)[0]
        self.seen.append((time.monotonic(), f"{method} {path}"))
        if self.hold_events and "/events" in path:
            while await reader.read(4096):
                pass
            writer.close()
            return
        up_r, up_w = await asyncio.open_unix_connection(str(self.upstream))
        up_w.write(head)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def between(self, t0: float, t1: float) -> list[str]:
        return [what for t, what in self.seen if t0 <= t <= t1]


class Engine:
    """A `podman system service` of the benchmark's own, behind a HoldingProxy."""

    def __init__(self, root: Path, hold_events: bool):
        self.socket = root / "engine.sock"
        self.proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 20
        while not self.socket.exists():
            if time.monotonic() > end:
                raise RuntimeError("the engine service never listened")
            time.sleep(0.05)
        self.proxy = HoldingProxy(root / "proxy.sock", self.socket, hold_events)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def serve(tag: str, hold_events: bool, resync: str | None) -> tuple[Instance, Engine]:
    root = temp_root(tag)
    engine = Engine(root, hold_events)
    env = {"CLAWDOCK_ENGINE_SOCKET": str(engine.proxy.listen)}
    if resync:
        env["CLAWDOCK_RESYNC_SECS"] = resync
    inst = Instance(tag, root=root, extra_env=env)
    inst.start()
    inst.create_agents([agent_name(tag, n) for n in range(AGENTS)])
    return inst, engine


def idle_cost(tag: str, resync: str | None, seconds: float) -> tuple[float, float, dict]:
    inst, engine = serve(tag, hold_events=False, resync=resync)
    try:
        time.sleep(5)
        pid = inst.proc.pid
        c0, t0 = sum(cpu_ticks(pid)), time.monotonic()
        log(f"{tag}: idle {seconds:.0f} s")
        time.sleep(seconds)
        c1, t1 = sum(cpu_ticks(pid)), time.monotonic()
        minutes = (t1 - t0) / 60
        seen = engine.proxy.between(t0, t1)
        kinds: dict[str, int] = {}
        for what in seen:
            key = "listing" if what.endswith("/containers/json") else what.split(" ")[1].rsplit("/", 1)[-1]
            kinds[key] = kinds.get(key, 0) + 1
        return len(seen) / minutes, (c1 - c0) / CLK_TCK / minutes, kinds
    finally:
        inst.cleanup()
        engine.close()


def crashes(view: dict) -> int:
    return (view.get("crashLoop") or {}).get("crashes", 0)


def time_to_see_a_death(tag: str, hold_events: bool) -> list[float]:
    inst, engine = serve(tag, hold_events=hold_events, resync=None)
    seen = []
    try:
        agents = inst.api.agents()
        for k in range(KILLS):
            a = agents[k % len(agents)]
            inst.wait_agents([a["id"]], "running", 60)
            time.sleep(1 + k * 1.7)  # spread the kills over the reconciler's period
            # An agent killed before stays in its crash loop (until 10 min healthy):
            # its death is seen when the loop counts one more.
            before = crashes(next(v for v in inst.api.agents() if v["id"] == a["id"]))
            t0 = time.monotonic()
            podman("kill", f"clawdock-{a['name']}")
            while True:
                view = next(v for v in inst.api.agents() if v["id"] == a["id"])
                if view["status"] != "running" or crashes(view) > before:
                    seen.append(time.monotonic() - t0)
                    break
                if time.monotonic() - t0 > 60:
                    raise RuntimeError(f"{tag}: a death not seen within 60 s")
                time.sleep(0.02)
        return seen
    finally:
        inst.cleanup()
        engine.close()


def run(args) -> list[Table]:
    held = time_to_see_a_death("rsheld", hold_events=True)
    told = time_to_see_a_death("rstold", hold_events=False)
    t = Table("7. A death from outside: seen by the events, and by the reconciler alone",
              ["path", "median", "min", "max", "ratio (median)"])
    t.add("events flowing", secs(median(told)), secs(min(told)), secs(max(told)), "1.00x")
    t.add("events held (the reconciler's listing, every 10 s)", secs(median(held)),
          secs(min(held)), secs(max(held)), ratio(median(held), median(told)))
    t.note(f"{KILLS} kills each, spread over the period; the view polled every 20 ms.")
    on_req, on_cpu, on_kinds = idle_cost("rson", None, args.idle)
    off_req, off_cpu, off_kinds = idle_cost("rsoff", "3600", args.idle)
    u = Table(f"7b. Idle cost with {AGENTS} agents, per minute",
              ["reconciler", "requests to the engine", "Clawdock CPU", "ratio (CPU)"])
    u.add("off (CLAWDOCK_RESYNC_SECS=3600)", f"{off_req:.1f}", f"{off_cpu:.3f} s", "1.00x")
    u.add("every 10 s (default)", f"{on_req:.1f}", f"{on_cpu:.3f} s", ratio(on_cpu, off_cpu))
    u.note(f"requests by kind, on: {on_kinds}; off: {off_kinds}")
    return [t, u]
