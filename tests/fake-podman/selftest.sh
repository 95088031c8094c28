#!/usr/bin/env bash
# Self-test for the fake podman (tests/fake-podman/podman). Exercises every feature
# against throw-away state files; exits non-zero on the first failure.
# The pass-through and API-socket checks need a working real podman (FAKE_PODMAN_REAL,
# default /usr/bin/podman) and curl; set FAKE_PODMAN_SKIP_REAL=1 to skip them.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
FAKE="$HERE/podman"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
export FAKE_PODMAN_STATE="$WORK/state.json"
# Without a real podman, `machine start` must not try to run its API service.
[ -n "${FAKE_PODMAN_SKIP_REAL:-}" ] && export FAKE_PODMAN_NO_API=1

pass=0
fail() { echo "FAIL: $*" >&2; echo "--- stdout:" >&2; cat "$WORK/out" >&2 2>/dev/null
         echo "--- stderr:" >&2; cat "$WORK/err" >&2 2>/dev/null; exit 1; }
ok() { pass=$((pass + 1)); echo "ok - $*"; }

# run ARGS...: run the fake, capture stdout/stderr in $WORK/out, $WORK/err and rc in $RC.
run() { "$FAKE" "$@" >"$WORK/out" 2>"$WORK/err"; RC=$?; }
# tty_run ARGS...: run the fake on a pseudo-terminal (stdout and stderr both), its
# output in $WORK/out, rc in $RC.
tty_run() {
  python3 - "$FAKE" "$@" >"$WORK/out" 2>"$WORK/err" <<'EOF'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:  # EIO: the child side closed
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
EOF
  RC=$?
}
expect_rc() { [ "$RC" -eq "$1" ] || fail "$2: exit $RC, expected $1"; }
out_has() { grep -qF -- "$1" "$WORK/out" || fail "$2: stdout lacks '$1'"; }
err_has() { grep -qF -- "$1" "$WORK/err" || fail "$2: stderr lacks '$1'"; }
# pyq EXPR: evaluate a Python expression with s = state dict, o = stdout parsed as JSON.
pyq() {
  python3 - "$1" "$FAKE_PODMAN_STATE" "$WORK/out" <<'EOF'
import json, sys
expr, state_path, out_path = sys.argv[1:]
try:
    s = json.load(open(state_path))
except (OSError, ValueError):
    s = {}
try:
    o = json.load(open(out_path))
except (OSError, ValueError):
    o = None
m = {r["Name"]: r for r in s.get("machines", [])}
sys.exit(0 if eval(expr) else 1)
EOF
}
check() { pyq "$1" || fail "$2: expected $1"; }
set_state() { printf '%s\n' "$1" >"$FAKE_PODMAN_STATE"; }
# edit_state PYTHON: modify the state dict `s` in place (tests own the file between calls).
edit_state() {
  python3 - "$1" "$FAKE_PODMAN_STATE" <<'EOF'
import json, sys
code, path = sys.argv[1:]
try:
    s = json.load(open(path))
except (OSError, ValueError):
    s = {}
exec(code)
json.dump(s, open(path, "w"), indent=2)
EOF
}
reset() { rm -f "$FAKE_PODMAN_STATE" "$FAKE_PODMAN_STATE.lock"; }
now() { python3 -c 'import time; print(time.time())'; }
elapsed_ge() { python3 -c "import sys,time; sys.exit(0 if time.time()-$1 >= $2 else 1)"; }
# wait_for EXPR WHAT: poll the state until EXPR holds (up to ~20 s, for loaded machines).
wait_for() {
  for _ in $(seq 200); do pyq "$1" && return 0; sleep 0.1; done
  fail "timed out waiting for: $2"
}

[ -x "$FAKE" ] || fail "$FAKE is not executable"

# --- version -----------------------------------------------------------------
reset
run --version; expect_rc 0 "--version"; out_has "podman version 5.2.1" "--version default"
set_state '{"version": "5.0.3"}'
run version; expect_rc 0 "version"; out_has "podman version 5.0.3" "version from state"
check 's["calls"]["version"] == 1' "version counted (set_state reset the counts)"
ok "version"

# --- list empty --------------------------------------------------------------
reset
run machine list --format json; expect_rc 0 "list empty"
check 'o == []' "list empty prints []"
run machine ls --format=json --noheading; expect_rc 0 "ls --format=json"; check 'o == []' "ls []"
check 's["calls"]["machine list"] == 2' "list counted"
ok "list empty"

# --- init with flags and progress --------------------------------------------
run machine init --cpus 4 --memory=4096 --disk-size 50 --rootful --timezone UTC --image-path /tmp/x.qcow2
expect_rc 0 "init"
for line in "Looking up Podman Machine image at" "Getting image source signatures" \
            "Copying blob sha256:" "Writing manifest to image destination" \
            "Extracting compressed file: podman-machine-default-" "Machine init complete"; do
  err_has "$line" "init progress"
done
# Like Podman on a pipe: phases only, no byte counters and no terminal codes.
grep -q 'iB / ' "$WORK/err" && fail "init progress: byte counters on a pipe"
grep -q "$(printf '\033')" "$WORK/err" && fail "init progress: terminal codes on a pipe"
check 's["last_init_args"] == ["machine","init","--cpus","4","--memory=4096","--disk-size","50","--rootful","--timezone","UTC","--image-path","/tmp/x.qcow2"]' "last_init_args"
run machine list --format json; expect_rc 0 "list after init"
check 'len(o) == 1 and o[0]["Name"] == "podman-machine-default" and o[0]["Default"] is True' "row Default"
check 'o[0]["CPUs"] == 4 and o[0]["Memory"] == "4294967296" and o[0]["DiskSize"] == "53687091200"' "row resources"
check 'o[0]["Running"] is False and o[0]["Starting"] is False and o[0]["VMType"] == "qemu"' "row stopped"
check 'set(o[0]) == {"Name","Default","Created","Running","Starting","LastUp","Stream","VMType","CPUs","Memory","DiskSize","Port","RemoteUsername","IdentityPath","UserModeNetworking"}' "row keys"
run machine inspect; expect_rc 0 "inspect"
check 'o[0]["State"] == "stopped" and o[0]["Resources"]["CPUs"] == 4 and o[0]["Resources"]["Memory"] == 4096 and o[0]["Resources"]["DiskSize"] == 50 and o[0]["Rootful"] is True' "inspect stopped"
run machine init; expect_rc 125 "init twice"; err_has "Error: podman-machine-default: VM already exists" "init twice"
run machine init --cpus=lots; expect_rc 125 "init bad int"; err_has 'invalid argument "lots"' "bad int"
run machine init --bogus; expect_rc 125 "init unknown flag"; err_has "unknown flag: --bogus" "unknown flag"
check 's["calls"]["machine init"] == 4' "rejected inits counted"
ok "init"

# --- init on a terminal: bars redrawn like mpb ----------------------------------
tty_run machine init tty-machine; expect_rc 0 "init on a terminal"
for line in "Copying blob 8a4c2e7d1f3b [" "512.0MiB / 2.0GiB" "25.0MiB / 100.0MiB" "2.0GiB / 2.0GiB" \
            "Copying blob 8a4c2e7d1f3b done" "Extracting compressed file: tty-machine-" "1.0GiB / 2.1GiB" \
            "Machine init complete"; do
  out_has "$line" "init bars on a terminal"
done
out_has "$(printf '\033[2A\033[J')" "bars redrawn in place (cursor up, erase)"
grep -q "$(printf '\r')Extracting" "$WORK/out" || fail "the unpacking bar redraws with a carriage return"
run machine rm -f tty-machine; expect_rc 0 "rm tty-machine"
ok "init on a terminal"

# --- second machine, defaults -------------------------------------------------
run machine init other; expect_rc 0 "init other"
run machine list --format json
check 'len(o) == 2 and o[1]["Name"] == "other" and o[1]["Default"] is False and o[1]["CPUs"] == 2 and o[1]["Memory"] == "2147483648" and o[1]["DiskSize"] == "107374182400" and o[1]["Port"] != o[0]["Port"]' "second machine defaults"
run machine rm -f other; expect_rc 0 "rm other"
run machine rm -f other; expect_rc 125 "rm missing"; err_has "Error: other: VM does not exist" "rm missing"
run machine inspect other; expect_rc 125 "inspect missing"; err_has "Error: other: VM does not exist" "inspect missing"
check 'list(m) == ["podman-machine-default"]' "rm removed"
ok "second machine, rm, inspect missing"

# --- pass-through refused while stopped ---------------------------------------
run ps -a --format json; expect_rc 125 "ps while stopped"
err_has "Cannot connect to Podman. Please verify your connection to the Linux system using \`podman system connection list\`" "refused"
err_has "Error: unable to connect to Podman socket: failed to connect: dial tcp 127.0.0.1:44035: connect: connection refused" "refused"
check 's["calls"]["container ps"] == 1' "container ps counted"
ok "pass-through refused while stopped"

# --- start / stop / already running -------------------------------------------
run machine start; expect_rc 0 "start"
out_has 'Starting machine "podman-machine-default"' "start"
out_has 'Machine "podman-machine-default" started successfully' "start"
check 'm["podman-machine-default"]["Running"] is True and m["podman-machine-default"]["Starting"] is False' "running"
run machine inspect podman-machine-default; check 'o[0]["State"] == "running"' "inspect running"
run machine start; expect_rc 125 "start again"
err_has 'Error: unable to start "podman-machine-default": machine podman-machine-default: VM already running or starting' "already running"

# --- pass-through while running ------------------------------------------------
if [ -z "${FAKE_PODMAN_SKIP_REAL:-}" ]; then
  run ps -a --format json; expect_rc 0 "ps via real podman"
  check 'isinstance(o, list)' "real ps output is JSON"
  run container exists fake-podman-no-such-container; expect_rc 1 "real exit code passes through"
  check 's["calls"]["container exists"] == 1' "container <sub> step name"
  ok "pass-through via real podman"
fi

run machine stop; expect_rc 0 "stop"; out_has 'Machine "podman-machine-default" stopped successfully' "stop"
check 'm["podman-machine-default"]["Running"] is False' "stopped"
run machine stop; expect_rc 0 "stop again"
run machine stop nope; expect_rc 125 "stop missing"
ok "start/stop/already running"

# --- the machine's API socket ---------------------------------------------------
SOCK="$WORK/podman-machine-default-api.sock"
# api_procs SOCK: pids of the watcher and service serving SOCK (their argv names it).
api_procs() { pgrep -f -- "$1" | tr '\n' ' '; }
ping_ok() { curl -sf --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }
recorded() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_services"][sys.argv[2]]["pid"])' "$FAKE_PODMAN_STATE" "$1"; }
run machine inspect; expect_rc 0 "inspect stopped"
check "o[0]['ConnectionInfo'] == {'PodmanSocket': {'Path': '$SOCK'}, 'PodmanPipe': None}" "a stopped machine still reports its socket (Podman 5 shape)"
ping_ok "$SOCK" && fail "the socket answers while the machine is stopped"
if [ -z "${FAKE_PODMAN_SKIP_REAL:-}" ]; then
  run machine start; expect_rc 0 "start with API"
  run machine inspect --format '{{.ConnectionInfo.PodmanSocket.Path}}'; expect_rc 0 "inspect socket path"
  sock=$(cat "$WORK/out"); [ "$sock" = "$SOCK" ] || fail "inspect gave socket '$sock', expected $SOCK"
  ping_ok "$sock" || fail "the inspected socket does not answer _ping after start"
  check "s['api_services']['podman-machine-default']['socket'] == '$SOCK'" "service recorded"
  watcher=$(recorded podman-machine-default); procs=$(api_procs "$SOCK")
  [ "$(echo $procs | wc -w)" -eq 2 ] || fail "expected a watcher and a service, got pids: $procs"
  # A start that finds the service running ("already" marks the machine running) reuses it.
  edit_state 's["faults"] = {"machine start": {"mode": "already"}}'
  run machine start; expect_rc 125 "start already with a service running"
  [ "$(recorded podman-machine-default)" = "$watcher" ] || fail "already-start replaced the watcher"
  [ "$(api_procs "$SOCK")" = "$procs" ] || fail "already-start doubled the service: $(api_procs "$SOCK")"
  # A client stream over the API ends when the machine stops, and nothing stays behind.
  curl -s --unix-socket "$SOCK" http://d/v4.0.0/libpod/events >/dev/null 2>&1 & cp=$!
  sleep 0.3
  run machine stop; expect_rc 0 "stop with API"
  ping_ok "$SOCK" && fail "the socket still answers after machine stop"
  [ -e "$SOCK" ] && fail "the socket file is left after machine stop"
  [ -z "$(api_procs "$SOCK")" ] || fail "service processes remain after machine stop: $(api_procs "$SOCK")"
  check '"api_services" not in s' "stop drops the record"
  for _ in $(seq 20); do kill -0 "$cp" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$cp" 2>/dev/null && fail "an events stream over the API outlived machine stop"
  wait "$cp" 2>/dev/null
  # rm ends it too.
  run machine start; expect_rc 0 "start again"; ping_ok "$SOCK" || fail "no _ping after restart"
  run machine rm -f; expect_rc 0 "rm with API"
  [ -z "$(api_procs "$SOCK")" ] || fail "service processes remain after machine rm"
  ping_ok "$SOCK" && fail "the socket answers after machine rm"
  run machine init; expect_rc 0 "init after rm"
  # The service dies with its state file's directory (a test that never stops it).
  gone=$(mktemp -d "$WORK/gone.XXXXXX")
  FAKE_PODMAN_STATE="$gone/state.json" "$FAKE" machine init --now >/dev/null 2>&1 || fail "init --now in $gone"
  ping_ok "$gone/podman-machine-default-api.sock" || fail "init --now: no _ping"
  rm -rf "$gone"
  for _ in $(seq 50); do [ -z "$(api_procs "$gone/")" ] && break; sleep 0.1; done
  [ -z "$(api_procs "$gone/")" ] || fail "the service outlived its state dir: $(api_procs "$gone/")"
  ok "API socket: start answers _ping, reuse, stop/rm end it, dies with its state dir"
fi
# A test's fault-injecting proxy in front of the socket: inspect hands out its path.
edit_state 's["api_socket"] = "/tmp/fake-podman-proxy.sock"'
run machine inspect; expect_rc 0 "inspect with api_socket"
check "o[0]['ConnectionInfo'] == {'PodmanSocket': {'Path': '/tmp/fake-podman-proxy.sock'}, 'PodmanPipe': None}" "api_socket override"
run machine inspect --format '{{.ConnectionInfo.PodmanSocket.Path}} {{.ConnectionInfo.PodmanPipe}}'
out_has "/tmp/fake-podman-proxy.sock <nil>" "api_socket override in a template"
edit_state 'del s["api_socket"]'
ok "API socket: api_socket override"

# --- init --now --------------------------------------------------------------
reset
run machine init --now; expect_rc 0 "init --now"; out_has "started successfully" "init --now"
check 'm["podman-machine-default"]["Running"] is True' "init --now runs"
check 's["calls"].get("machine start") is None' "--now is not a start invocation"
ok "init --now"

# --- start delay, no lock held, stale Starting after kill ---------------------
reset
run machine init; edit_state 's["delays"] = {"machine start": 30}'
"$FAKE" machine start >"$WORK/bg.out" 2>&1 &
bg=$!
wait_for 'm["podman-machine-default"]["Starting"] is True' "start marks Starting"
check 'm["podman-machine-default"]["Running"] is False' "not running during delay"
run machine inspect; expect_rc 0 "inspect during start"   # lock is free during the delay
check 'o[0]["State"] == "starting"' "inspect starting"
run ps; expect_rc 125 "pass-through refused while starting"
kill "$bg"; wait "$bg" 2>/dev/null
check 'm["podman-machine-default"]["Starting"] is True and m["podman-machine-default"]["Running"] is False' "stale Starting after kill"
run machine start; expect_rc 125 "start with stale Starting"; err_has "VM already running or starting" "stale"
run machine stop; expect_rc 0 "stop clears stale Starting"
check 'm["podman-machine-default"]["Starting"] is False' "stale cleared"
edit_state 's["delays"] = {"machine start": 0.5}'
t=$(now); run machine start; expect_rc 0 "start with delay"
elapsed_ge "$t" 0.5 || fail "start delay not honoured"
ok "start delay, stale Starting"

# --- concurrent starts: exactly one wins ---------------------------------------
run machine stop; edit_state 's["delays"] = {"machine start": 0.3}; s["calls"] = {}'
pids=()
for i in $(seq 20); do "$FAKE" machine start >/dev/null 2>"$WORK/cs.$i" & pids+=($!); done
wins=0; for p in "${pids[@]}"; do wait "$p" && wins=$((wins + 1)); done
[ "$wins" -eq 1 ] || fail "concurrent start: $wins winners, expected 1"
check 's["calls"]["machine start"] == 20 and m["podman-machine-default"]["Running"] is True' "concurrent start"
ok "20 concurrent starts: 1 success"

# --- faults ------------------------------------------------------------------
reset
set_state '{"faults": {"machine list": {"mode": "fail", "times": 2, "message": "Error: boom", "exit": 7}}}'
run machine list --format json; expect_rc 7 "fail 1"; err_has "Error: boom" "fail message"
check 's["faults"]["machine list"]["times"] == 1' "times decremented"
run machine list --format json; expect_rc 7 "fail 2"
check '"machine list" not in s["faults"]' "fault removed at 0"
run machine list --format json; expect_rc 0 "fault spent"; check 'o == []' "fault spent"
check 's["calls"]["machine list"] == 3' "faulted calls counted"

set_state '{"faults": {"version": {"mode": "fail"}}}'
run --version; expect_rc 125 "fail defaults"; err_has "Error: version failed (injected)" "fail default message"
run --version; expect_rc 0 "default times is 1"

set_state '{"faults": {"machine inspect": {"mode": "fail", "times": -1}}}'
for i in 1 2 3; do run machine inspect; expect_rc 125 "forever $i"; done
check 's["faults"]["machine inspect"]["times"] == -1' "forever stays"

set_state '{"faults": {"machine list": {"mode": "garbage"}}}'
run machine list --format json; expect_rc 0 "garbage"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/out" 2>/dev/null && fail "garbage is JSON"
grep -q "not json" "$WORK/out" || fail "garbage output"
ok "faults: fail, times, forever, garbage"

set_state '{"faults": {"machine list": {"mode": "hang"}}}'
"$FAKE" machine list >/dev/null 2>&1 & hp=$!
wait_for 's.get("calls", {}).get("machine list") == 1' "hanging list counted"
run machine list --format json; expect_rc 0 "list while another hangs"   # lock is free
check 'o == [] and s["calls"]["machine list"] == 2' "second list done"
kill -0 "$hp" 2>/dev/null || fail "hang did not hang"
kill "$hp"; wait "$hp" 2>/dev/null
ok "fault: hang (lock not held)"

# already: init creates the machine and still fails
reset
set_state '{"faults": {"machine init": {"mode": "already"}}}'
run machine init; expect_rc 125 "init already"
err_has "Error: podman-machine-default: VM already exists" "init already message"
check 'len(m) == 1 and m["podman-machine-default"]["Running"] is False' "init already created machine"
# already: start marks running and still fails
edit_state 's["faults"] = {"machine start": {"mode": "already"}}'
run machine start; expect_rc 125 "start already"
err_has 'Error: unable to start "podman-machine-default": machine podman-machine-default: VM already running or starting' "start already message"
check 'm["podman-machine-default"]["Running"] is True and m["podman-machine-default"]["Starting"] is False' "start already runs"
edit_state 's["faults"] = {"machine stop": {"mode": "already"}}'
run machine stop; expect_rc 125 "stop already"; err_has "already" "stop already"
# failing start does not leave Starting behind
run machine stop; edit_state 's["faults"] = {"machine start": {"mode": "fail"}}'
run machine start; expect_rc 125 "start fail"
check 'm["podman-machine-default"]["Starting"] is False and m["podman-machine-default"]["Running"] is False' "failed start leaves no Starting"
ok "fault: already (init, start, stop)"

# container step faults and delays
run machine start
edit_state 's["faults"] = {"container ps": {"mode": "fail", "message": "Error: ps broke"}}'
run ps; expect_rc 125 "container fault"; err_has "Error: ps broke" "container fault"
if [ -z "${FAKE_PODMAN_SKIP_REAL:-}" ]; then
  edit_state 's["delays"] = {"container ps": 0.5}'
  t=$(now); run ps --format json; expect_rc 0 "delayed ps"
  elapsed_ge "$t" 0.5 || fail "container delay not honoured"
fi
edit_state 's["delays"] = {"machine list": 3}; s["calls"] = {}'
t=$(now)
"$FAKE" machine list --format json >/dev/null 2>&1 & dp=$!
wait_for 's["calls"].get("machine list") == 1' "delayed list counted"
run machine inspect; expect_rc 0 "inspect during list delay"
kill -0 "$dp" 2>/dev/null || fail "inspect had to wait for the delayed list (lock held?)"
wait "$dp"; elapsed_ge "$t" 3 || fail "list delay not honoured"
ok "container faults, delays without lock"

# init delay spread across lines
reset; set_state '{"delays": {"machine init": 1}}'
t=$(now); run machine init; expect_rc 0 "delayed init"; elapsed_ge "$t" 1 || fail "init delay"
ok "init delay"

# --- concurrency: 50 inits -> 50 counted, 1 machine -----------------------------
reset
pids=()
for i in $(seq 50); do "$FAKE" machine init >/dev/null 2>&1 & pids+=($!); done
wins=0; for p in "${pids[@]}"; do wait "$p" && wins=$((wins + 1)); done
check 's["calls"]["machine init"] == 50' "50 inits counted"
check 'len(s["machines"]) == 1' "exactly one machine"
[ "$wins" -eq 1 ] || fail "concurrent init: $wins succeeded, expected 1"
ok "50 concurrent inits: 50 counted, 1 machine"

# --- robustness: broken state file ---------------------------------------------
printf '{"machines": [{"Name": "x", "Runn' >"$FAKE_PODMAN_STATE"
run machine list --format json; expect_rc 0 "partial state does not crash"
check 'o == []' "partial state reads as empty"
grep -q '"Runn$' "$FAKE_PODMAN_STATE" || fail "broken state was overwritten"
set_state '{"machines": "nonsense", "faults": [], "calls": 3, "delays": {"machine list": "x"}}'
run machine list --format json; expect_rc 0 "odd state types"; check 'o == []' "odd state types"
reset
run; expect_rc 125 "no command"
unset FAKE_PODMAN_STATE; run --version; expect_rc 125 "state env required"
ok "robustness"

echo "all $pass checks passed"
