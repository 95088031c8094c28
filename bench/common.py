"""Shared pieces of the Clawdock benchmarks (Python 3 stdlib only).

- `Instance`: one `clawdock serve` or desktop app with a temp CLAWDOCK_HOME, its own
  agent port range, and a podman wrapper that logs every podman process it spawns.
- `Api`: a keep-alive HTTP client for the instance's API (url and token from api.json).
- `XSession`: Xvfb plus a private D-Bus session bus, and the tray lookup over D-Bus
  (the same gdbus calls as src-tauri/tests/desktop.rs).
- /proc helpers (CPU seconds, RSS/PSS, descendants), statistics, and a result table.

Cleanup: every Instance is SIGTERMed (Clawdock stops its agents), then every container
labelled io.clawdock.home=<instance-id> is removed with `podman rm -f`, and the temp
folder is deleted. Baseline containers made directly with podman carry the label
io.clawdock.bench=<pid of run.py> and are removed the same way. `cleanup_all()` is the
safety net run.py calls at the end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("CLAWDOCK_BENCH_BIN", REPO / "target/release/clawdock"))
TRAY_HOST = REPO / "target/release/examples/tray_host"
IMAGE = "localhost/clawdock-test-gateway:latest"
STUBBORN_IMAGE = "localhost/clawdock-test-gateway-stubborn:latest"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
FAKE_PODMAN = REPO / "tests/fake-podman/podman"
PID = os.getpid()
BENCH_LABEL = f"io.clawdock.bench={PID}"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

VERBOSE = os.environ.get("BENCH_VERBOSE", "") not in ("", "0")

_labels: set[str] = set()  # instance ids whose containers must go
_instances: list["Instance"] = []
_sessions: list["XSession"] = []
_roots: list[Path] = []
_port_slot = 0


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def debug(msg: str) -> None:
    if VERBOSE:
        log(msg)


# ---- ports and names ---------------------------------------------------------------


def next_port_base() -> int:
    """A range of 25 agent ports per server, below the kernel's ephemeral range
    (32768+) and above the desktop tests' 25000-29000."""
    global _port_slot
    base = 30000 + (PID % 10) * 270 + _port_slot * 27
    _port_slot += 1
    if _port_slot >= 10:
        _port_slot = 0
    return base


def agent_name(tag: str, n: int) -> str:
    """Container names are global to Podman: the PID keeps runs apart."""
    return f"bench{PID}-{tag}{n}"


def temp_root(tag: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"clawdock-bench-{PID}-{tag}-"))
    _roots.append(root)
    return root


# ---- statistics --------------------------------------------------------------------


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def p99(xs):
    """Nearest-rank 99th percentile."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def ratio(a, b) -> str:
    if not b or b != b or a != a:
        return "n/a"
    r = a / b
    if r >= 100:
        return f"{r:,.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def ms(x) -> str:
    if x != x:
        return "n/a"
    if x < 0.001:
        return f"{x * 1000:.3f} ms"
    if x < 0.1:
        return f"{x * 1000:.2f} ms"
    return f"{x * 1000:.0f} ms"


def secs(x) -> str:
    return "n/a" if x != x else f"{x:.2f} s"


# ---- result tables -----------------------------------------------------------------


class Table:
    def __init__(self, title: str, headers: list[str]):
        self.title = title
        self.headers = headers
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def add(self, *cells) -> None:
        self.rows.append([str(c) for c in cells])

    def note(self, text: str) -> None:
        self.notes.append(text)

    def text(self) -> str:
        widths = [len(h) for h in self.headers]
        for r in self.rows:
            for i, c in enumerate(r):
                widths[i] = max(widths[i], len(c))
        line = lambda cells: "  ".join(  # noqa: E731
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
        )
        out = [self.title, "=" * len(self.title), line(self.headers)]
        out.append("  ".join("-" * w for w in widths))
        out += [line(r) for r in self.rows]
        out += [f"  * {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |"]
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


# ---- podman ------------------------------------------------------------------------


def podman(*args, check=True, timeout=120) -> subprocess.CompletedProcess:
    p = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: rc={p.returncode}: {p.stderr.strip()[-300:]}")
    return p


def remove_labelled(label_filter: str) -> int:
    """`podman rm -f` every container matching a label filter (key=value)."""
    out = podman("ps", "-aq", "--filter", f"label={label_filter}", check=False).stdout.split()
    if out:
        podman("rm", "-f", "-t", "0", *out, check=False)
    return len(out)


def time_process(argv, env=None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    return dt, p.returncode, (p.stderr.strip().splitlines() or [""])[-1]


class PodmanCounter:
    """A wrapper that appends `<epoch seconds> <args>` to a file for every podman
    process Clawdock spawns, then execs the real podman (bash, no extra process)."""

    def __init__(self, root: Path):
        self.log = root / "podman-calls.log"
        self.log.touch()
        self.path = root / "podman-wrapper"
        self.path.write_text(
            "#!/bin/bash\n"
            f"printf '%s %s\\n' \"$EPOCHREALTIME\" \"$*\" >> '{self.log}'\n"
            f"exec '{PODMAN}' \"$@\"\n"
        )
        self.path.chmod(0o755)

    def calls(self) -> list[tuple[float, str]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            t, _, args = line.partition(" ")
            try:
                out.append((float(t), args))
            except ValueError:
                pass
        return out

    def count(self) -> int:
        return len(self.calls())

    def between(self, t0: float, t1: float) -> list[tuple[float, str]]:
        return [c for c in self.calls() if t0 <= c[0] <= t1]


def subcommand(args: str) -> str:
    """'ps --all --format json ...' -> 'ps'; 'image exists x' -> 'image exists'."""
    # Global flags first (`--max-workers=10 stop ...`) do not name the subcommand.
    words = [w for w in args.split() if not w.startswith("--max-workers")]
    if not words:
        return "?"
    if words[0] in ("image", "machine", "container", "volume") and len(words) > 1:
        return f"{words[0]} {words[1]}"
    # Clawdock's calls of the same subcommand, told apart by their arguments.
    if words[0] == "info":
        return "info(host probe)" if "Rootless" in args else "info(engine probe)"
    if words[0] == "ps":
        if "--format json" in args and "--all" in args:
            return "ps(listing)"
        if "io.clawdock.agent=" in args:
            return "ps(exists?)"
        if "--quiet" in args and "--all" not in args:
            return "ps(running, to kill)"
    return words[0]


def summarize_calls(calls) -> str:
    counts: dict[str, int] = {}
    for _, args in calls:
        k = subcommand(args)
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items()) or "none"


# ---- /proc -------------------------------------------------------------------------


def proc_stat(pid: int):
    """(ppid, comm, utime+stime ticks, cutime+cstime ticks) or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    f = text[text.rindex(")") + 2 :].split()
    # f[0] is state (field 3); utime is field 14 -> f[11]
    return int(f[1]), comm, int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def all_procs() -> dict[int, tuple[int, str]]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                out[int(d)] = (st[0], st[1])
    return out


def descendants(pid: int) -> list[tuple[int, str]]:
    procs = all_procs()
    kids: dict[int, list[int]] = {}
    for p, (pp, _) in procs.items():
        kids.setdefault(pp, []).append(p)
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append((p, procs[p][1]))
        todo += kids.get(p, [])
    return out


def cpu_ticks(pid: int) -> tuple[int, int]:
    st = proc_stat(pid)
    return (st[2], st[3]) if st else (0, 0)


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB from smaps_rollup."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def pss_by_mapping(pid: int, top: int = 8) -> list[tuple[str, int]]:
    """The largest PSS shares in kB of /proc/PID/smaps, summed per mapped file (its
    name) or per kind of anonymous memory ([heap], [stack], anon)."""
    sums: dict[str, int] = {}
    name = "anon"
    try:
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split(None, 5)
            if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
                path = head[5].strip() if len(head) == 6 else ""
                name = Path(path).name if path.startswith("/") else (path or "anon")
            elif line.startswith("Pss:"):
                sums[name] = sums.get(name, 0) + int(line.split()[1])
    except OSError:
        return []
    return sorted(sums.items(), key=lambda kv: -kv[1])[:top]


# ---- the API -----------------------------------------------------------------------


class Api:
    def __init__(self, url: str, token: str):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.auth = {"Authorization": f"Bearer {token}"}
        self.conn = None
        self.connects = 0

    def _conn(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.connects += 1
        return self.conn

    def raw(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        headers = dict(self.auth)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                payload = r.read()
                if r.will_close:
                    self.close()
                return r.status, payload
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body=None):
        status, payload = self.raw(method, path, body)
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode(errors="replace")

    def agents(self) -> list[dict]:
        status, body = self.call("GET", "/agents")
        if status != 200:
            raise RuntimeError(f"GET /agents: {status} {body}")
        return body["agents"]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- an X server and a session bus -------------------------------------------------


class XSession:
    def __init__(self):
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        _sessions.append(self)
        self.display = ":" + self.xvfb.stdout.readline().decode().strip()
        self.dbus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.bus = self.dbus.stdout.readline().decode().strip()
        self.env = {"DISPLAY": self.display, "DBUS_SESSION_BUS_ADDRESS": self.bus}
        self._pid_of: dict[str, int] = {}
        # A desktop with a tray: a stand-in StatusNotifier host (without one the tray
        # app opens its window at launch, as on GNOME without the AppIndicator
        # extension). Built by scripts/bench.sh.
        self.tray_host = subprocess.Popen(
            [str(TRAY_HOST)], stdout=subprocess.PIPE, env={**os.environ, **self.env})
        if self.tray_host.stdout.readline().decode().strip() != "ready":
            raise RuntimeError(f"{TRAY_HOST} did not start (scripts/bench.sh builds it)")

    def gdbus(self, *args) -> str:
        try:
            p = subprocess.run(
                ["gdbus", *args], capture_output=True, text=True, timeout=5,
                env={**os.environ, **self.env},
            )
            return p.stdout
        except subprocess.TimeoutExpired:
            return ""

    def bus_names_of(self, pid: int) -> list[str]:
        names = re.findall(
            r"'(:\d+\.\d+)'",
            self.gdbus("call", "--session", "-d", "org.freedesktop.DBus", "-o",
                       "/org/freedesktop/DBus", "-m", "org.freedesktop.DBus.ListNames"),
        )
        out = []
        for n in names:
            if n not in self._pid_of:
                m = re.search(r"uint32 (\d+)", self.gdbus(
                    "call", "--session", "-d", "org.freedesktop.DBus", "-o",
                    "/org/freedesktop/DBus", "-m",
                    "org.freedesktop.DBus.GetConnectionUnixProcessID", n))
                if not m:
                    continue  # gone already; ask again next time
                self._pid_of[n] = int(m.group(1))
            if self._pid_of[n] == pid:
                out.append(n)
        return out

    def menu_path(self, name: str) -> str | None:
        """The tray's menu: the `Menu` property of the StatusNotifierItem (the tray app
        since issue 33, ksni), else libayatana's node (the tray app before it)."""
        prop = self.gdbus("call", "--session", "-d", name, "-o", "/StatusNotifierItem", "-m",
                          "org.freedesktop.DBus.Properties.Get",
                          "org.kde.StatusNotifierItem", "Menu")
        m = re.search(r"objectpath '([^']+)'", prop)
        if m:
            return m.group(1)
        root = "/org/ayatana/NotificationItem"
        xml = self.gdbus("introspect", "--session", "-d", name, "-o", root)
        for line in xml.splitlines():
            line = line.strip()
            if line.startswith("node "):
                node = line[5:].rstrip("{").strip().strip("/")
                if node and "/" not in node:
                    return f"{root}/{node}/Menu"
        return None

    def layout_items(self, name: str, path: str) -> list[tuple[int, str]]:
        """(id, label) of every item of the menu, mnemonic underscores removed."""
        text = self.gdbus("call", "--session", "-d", name, "-o", path, "-m",
                          "com.canonical.dbusmenu.GetLayout", "--", "0", "-1", "[]")
        return [(int(i), label.replace("_", ""))
                for i, label in re.findall(r"\((\d+), \{[^}]*?'label': <'([^']*)'>", text)]

    def layout(self, name: str, path: str) -> list[str]:
        return [label for _, label in self.layout_items(name, path)]

    def click(self, pid: int, label: str) -> None:
        """Clicks the tray menu item of that label, as a tray host does."""
        for n in self.bus_names_of(pid):
            path = self.menu_path(n)
            if not path:
                continue
            for i, item in self.layout_items(n, path):
                if item == label:
                    self.gdbus("call", "--session", "-d", n, "-o", path, "-m",
                               "com.canonical.dbusmenu.Event", "--", str(i), "clicked",
                               "<0>", "0")
                    return
        raise RuntimeError(f"no tray item {label!r} for pid {pid}")

    def close_window(self, title: str = "Clawdock") -> bool:
        """Closes the window as a window manager's close button does (no window
        manager runs here): tests/x11/close-window.py."""
        p = subprocess.run(["python3", str(REPO / "tests/x11/close-window.py"), title],
                           env={**os.environ, **self.env}, capture_output=True, timeout=10)
        return p.returncode == 0

    def tray_menu(self, pid: int) -> list[str] | None:
        """The tray menu's labels once the app's dbusmenu answers, else None."""
        for n in self.bus_names_of(pid):
            path = self.menu_path(n)
            if path:
                labels = self.layout(n, path)
                if labels:
                    return labels
        return None

    def window_mapped(self, title: str = "Clawdock") -> bool:
        """True when a window with this title is viewable on the X server (xwininfo)."""
        env = {**os.environ, **self.env}
        try:
            tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True,
                                  text=True, timeout=5, env=env).stdout
        except (OSError, subprocess.TimeoutExpired):
            return False
        for wid in re.findall(r"(0x[0-9a-f]+) \"" + re.escape(title) + r"\"", tree):
            info = subprocess.run(["xwininfo", "-id", wid], capture_output=True, text=True,
                                  timeout=5, env=env).stdout
            if "IsViewable" in info:
                return True
        return False

    def close(self) -> None:
        for p in (self.tray_host, self.xvfb, self.dbus):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self in _sessions:
            _sessions.remove(self)


# ---- a Clawdock instance -----------------------------------------------------------


class Instance:
    """`clawdock serve --port 0` (mode "serve") or the desktop app (mode "app", needs
    an XSession). One temp root holds CLAWDOCK_HOME, the podman wrapper and logs."""

    def __init__(self, tag: str, mode: str = "serve", image: str = IMAGE,
                 stop_timeout: float = 2, session: XSession | None = None,
                 root: Path | None = None, port_base: int | None = None, extra_env=None,
                 bin_path: Path | None = None, app_args: list[str] | None = None):
        self.tag, self.mode, self.session = tag, mode, session
        self.app_args = app_args or []
        self.bin = bin_path or BIN
        self.root = root or temp_root(tag)
        self.home = self.root / "home"
        self.home.mkdir(exist_ok=True)
        self.counter = PodmanCounter(self.root)
        self.port_base = port_base or next_port_base()
        self.env = {
            **os.environ,
            "CLAWDOCK_HOME": str(self.home),
            "CLAWDOCK_PODMAN": str(self.counter.path),
            "CLAWDOCK_AGENT_IMAGE": image,
            "CLAWDOCK_STOP_TIMEOUT": str(stop_timeout),
            "CLAWDOCK_PORT_BASE": str(self.port_base),
            "CLAWDOCK_API_PORT": "0",
            "NO_AT_BRIDGE": "1",
        }
        if session:
            self.env.update(session.env)
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.api: Api | None = None
        self.label: str | None = None
        self.runs = 0
        _instances.append(self)

    # -- lifecycle

    def spawn(self) -> float:
        """Starts the process; returns the perf_counter time just before the spawn."""
        argv = [str(self.bin)] + (["serve", "--port", "0"] if self.mode == "serve"
                                  else self.app_args)
        self.runs += 1
        out = open(self.root / f"{self.mode}-{self.runs}.log", "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        out.close()
        return t0

    def wait_api(self, timeout: float = 60, interval: float = 0.005) -> Api:
        """Waits for api.json of this process, then for GET /agents/runtime-status 200."""
        end = time.monotonic() + timeout
        api_file = self.home / "api.json"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.tag}: clawdock exited early ({self.proc.returncode}); "
                                   f"see {self.root}")
            try:
                info = json.loads(api_file.read_text())
                if info.get("pid") == self.proc.pid:
                    api = Api(info["url"], info["token"])
                    try:
                        status, _ = api.raw("GET", "/agents/runtime-status")
                        if status == 200:
                            self.api = api
                            self._note_label()
                            return api
                    except OSError:
                        api.close()
            except (OSError, ValueError):
                pass
            time.sleep(interval)
        raise RuntimeError(f"{self.tag}: the API did not answer within {timeout} s")

    def start(self, timeout: float = 60) -> Api:
        self.spawn()
        return self.wait_api(timeout)

    def _note_label(self) -> None:
        if self.label is None:
            self.label = (self.home / "instance-id").read_text().strip()
            _labels.add(self.label)

    def terminate(self, timeout: float = 60) -> float | None:
        """SIGTERM (Clawdock stops its agents first); seconds until the process exited."""
        if self.api:
            self.api.close()
        if not self.proc or self.proc.poll() is not None:
            return None
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.tag}: no exit {timeout} s after SIGTERM; SIGKILL")
            self.proc.kill()
            self.proc.wait()
        return time.perf_counter() - t0

    def cleanup(self) -> None:
        self.terminate()
        if self.label is None and (self.home / "instance-id").exists():
            self._note_label()
        if self.label:
            left = remove_labelled(f"io.clawdock.home={self.label}")
            if left:
                debug(f"{self.tag}: removed {left} leftover container(s)")
        if self in _instances:
            _instances.remove(self)

    # -- agents

    def create_agents(self, names: list[str], timeout: float = 180) -> float:
        """POST /agents/create for every name at once, then polls until all run.
        Returns the seconds it took."""
        t0 = time.perf_counter()
        ids = []
        for n in names:
            status, body = self.api.call("POST", "/agents/create", {"name": n})
            if status != 201:
                raise RuntimeError(f"create {n}: {status} {body}")
            ids.append(body["agent"]["id"])
        self.wait_agents(ids, "running", timeout)
        return time.perf_counter() - t0

    def wait_agents(self, ids, status: str, timeout: float = 180, interval: float = 0.1):
        end = time.monotonic() + timeout
        while True:
            agents = {a["id"]: a for a in self.api.agents()}
            bad = [a for i, a in agents.items() if i in ids and a["status"] == "error"]
            if bad:
                raise RuntimeError(f"agent failed: {bad[0].get('name')}: {bad[0].get('error')}")
            if all(agents.get(i, {}).get("status") == status and not agents[i].get("activity")
                   for i in ids):
                return agents
            if time.monotonic() > end:
                raise RuntimeError(f"agents not {status} within {timeout} s: "
                                   f"{[(a['name'], a['status']) for a in agents.values()]}")
            time.sleep(interval)

    def running_containers(self) -> int:
        if not self.label:
            return 0
        return len(podman("ps", "-q", "--filter", f"label=io.clawdock.home={self.label}",
                          check=False).stdout.split())


def wait_http(port: int, path: str = "/healthz", interval: float = 0.1,
              timeout: float = 30) -> tuple[float, int]:
    """Polls http://127.0.0.1:port/path every `interval`; (perf_counter time of the
    first 200, number of polls)."""
    end = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < end:
        polls += 1
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return time.perf_counter(), polls
        except (OSError, http.client.HTTPException):
            pass
        finally:
            c.close()
        time.sleep(interval)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer within {timeout} s")


def cleanup_all() -> None:
    """Safety net: every instance stopped, every labelled container removed, temp
    folders deleted, X and D-Bus servers stopped."""
    for inst in list(_instances):
        try:
            inst.cleanup()
        except Exception as e:  # noqa: BLE001
            log(f"cleanup of {inst.tag}: {e}")
    for label in list(_labels):
        remove_labelled(f"io.clawdock.home={label}")
    remove_labelled(BENCH_LABEL)
    for s in list(_sessions):
        s.close()
    for root in _roots:
        shutil.rmtree(root, ignore_errors=True)
    _roots.clear()


def cleanup_bench(*instances: Instance) -> None:
    for inst in instances:
        inst.cleanup()
    remove_labelled(BENCH_LABEL)


def in_thread(fn, *args):
    """Runs fn in a thread; returns a dict that gets 'value' or 'error'."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args)
        except Exception as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    box["thread"] = t
    return box
