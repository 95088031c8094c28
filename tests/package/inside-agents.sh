#!/usr/bin/env bash
# Runs inside the clean Debian 12 root made by tests/package/agents.sh, as root.
#   inside-agents.sh install DEB   (with the network) Podman, the package, the tools
#   inside-agents.sh run           (loopback only; FEED_PORT, N, NEXT set) the checks
# Each check prints "ok - ..." or "not ok - ...".
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
ok() { echo "ok - $*"; }
no() { echo "not ok - $*"; }
check() { # description, command...
  local what=$1; shift
  if "$@"; then ok "$what"; else no "$what"; fi
}

if [ "$1" = install ]; then
  apt-get update -qq >/dev/null 2>&1 || apt-get update
  echo "--- apt-get install podman and $2"
  if apt-get install -y -q --no-install-recommends podman runc conmon netavark aardvark-dns \
      catatonit iptables "$2" xvfb xauth dbus dbus-x11 libglib2.0-bin curl procps > /tmp/install.log 2>&1; then
    ok "Podman $(podman --version | awk '{print $3}') and $(basename "$2") install ($(grep -c '^Setting up' /tmp/install.log) packages set up)"
  else
    tail -20 /tmp/install.log; no "apt-get install podman $(basename "$2")"
  fi
  out=$(podman load -i /tmp/gateway.tar 2>&1)
  check "the stand-in gateway image is loaded into the root's Podman: $(echo "$out" | tail -1)" \
    podman image exists localhost/clawdock-test-gateway:latest
  exit 0
fi

# ---- run: loopback only, the feed at 127.0.0.1:$FEED_PORT/latest.json -----------
data=/root/.local/share/clawdock
api=$data/api.json
feed=/tmp/feed
Xvfb -displayfd 1 -screen 0 1280x800x24 -nolisten tcp > /tmp/display 2>/dev/null & xvfb=$!
dbus-daemon --session --nofork --print-address=1 > /tmp/bus 2>/dev/null & dbus=$!
for _ in $(seq 50); do [ -s /tmp/display ] && [ -s /tmp/bus ] && break; sleep 0.1; done
export DISPLAY=:$(head -1 /tmp/display) DBUS_SESSION_BUS_ADDRESS=$(head -1 /tmp/bus) NO_AT_BRIDGE=1
export CLAWDOCK_AGENT_IMAGE=localhost/clawdock-test-gateway:latest CLAWDOCK_STOP_TIMEOUT=3
export CLAWDOCK_SELF_UPDATE_URL=http://127.0.0.1:$FEED_PORT/latest.json
api_get() { # path
  local url token
  url=$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$api" 2>/dev/null | head -1)
  token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$api" 2>/dev/null | head -1)
  curl -s --max-time 5 -H "Authorization: Bearer $token" "$url$1"
}
installed() { dpkg-query -W -f='${Version}' clawdock; }
container() { podman inspect --format '{{.Id}} {{.State.StartedAt}} {{.State.Pid}}' clawdock-pkgagent 2>/dev/null; }
gd() { timeout 5 gdbus "$@" 2>/dev/null; }
tray() { # pid → "busname menupath" of its StatusNotifierItem
  local n path
  for n in $(gd call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.ListNames | grep -o "':1\.[0-9]*'" | tr -d "'"); do
    gd call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.GetConnectionUnixProcessID "$n" | grep -q "uint32 $1," || continue
    path=$(gd call --session -d "$n" -o /StatusNotifierItem -m org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierItem Menu | sed -n "s/.*objectpath '\([^']*\)'.*/\1/p")
    [ -n "$path" ] && { echo "$n $path"; return 0; }
  done
  return 1
}
layout() { gd call --session -d "$name" -o "$menu" -m com.canonical.dbusmenu.GetLayout -- 0 -1 '[]'; }
id_of() { layout | grep -oE "\(([0-9]+), \{[^}]*\}" | tr -d _ | grep -F "'label': <'$1'>" | head -1 | grep -oE '^\([0-9]+' | tr -d '('; }
click() { local id; id=$(id_of "$1"); [ -n "$id" ] && gd call --session -d "$name" -o "$menu" -m com.canonical.dbusmenu.Event -- "$id" clicked '<0>' 0 | grep -q '()'; }
find_tray() { # pid
  name="" menu=""
  local found
  for _ in $(seq 60); do
    found=$(tray "$1") && { name=${found% *}; menu=${found#* }; return 0; }
    sleep 0.5
  done
  return 1
}

check "version $N is installed" test "$(installed)" = "$N"
sh -c '/usr/bin/clawdock > /tmp/app.out 2>&1 & echo $! > /tmp/app.pid; wait $!; echo $? > /tmp/app.rc' &
sleep 0.5
app=$(cat /tmp/app.pid)
for _ in $(seq 100); do [ -s "$api" ] && break; sleep 0.1; done
find_tray "$app"
check "the tray app runs from the installed files ($(readlink /proc/$app/exe)) with its tray on D-Bus" \
  sh -c "test '$(readlink /proc/$app/exe)' = /usr/bin/clawdock-app && test -n '$menu'"

# An agent, from the installed command line, on the root's Podman.
out=$(timeout 180 clawdock agents create pkgagent 2>&1); rc=$?
check "clawdock agents create pkgagent runs it (exit $rc): $(echo "$out" | tail -1)" test "$rc" = 0
before=$(container)
check "its container runs under the root's Podman ($before)" test -n "$before"
dashboard() {
  local link
  link=$(clawdock agents open pkgagent --print 2>/dev/null | tail -1)
  curl -s -L --max-time 10 "$link" | grep -q 'fake OpenClaw Control UI'
}
check "its dashboard answers through Clawdock's one-time address" dashboard

# Refused updates: each leaves N installed, the app running, and says why.
refused() { # feed, what the CLI must say
  cp "$feed/$1.json" "$feed/latest.json"
  local out rc
  out=$(timeout 120 clawdock self-update 2>&1); rc=$?
  if [ "$rc" != 0 ] && grep -qF -- "$2" <<<"$out"; then
    ok "$1: clawdock self-update refuses (exit $rc): $out"
  else
    no "$1: clawdock self-update refuses, saying \"$2\" (exit $rc): $out"
  fi
  check "$1: version $N is still installed and the same app runs" \
    sh -c "test '$(installed)' = '$N' && kill -0 $app && test '$(readlink /proc/$app/exe)' = /usr/bin/clawdock-app"
}
refused tampered "does not verify with Clawdock's key"
refused stranger "does not verify with Clawdock's key"
refused downgrade "a downgrade is refused"
touch "$feed/down"   # the test's feed server stops (agents.sh)
for _ in $(seq 50); do curl -s --max-time 1 "http://127.0.0.1:$FEED_PORT/" >/dev/null || break; sleep 0.2; done
out=$(timeout 120 clawdock self-update 2>&1); rc=$?
if [ "$rc" != 0 ] && grep -qF "Could not reach the update feed" <<<"$out"; then
  ok "unreachable feed: clawdock self-update says so (exit $rc): $out"
else
  no "unreachable feed: clawdock self-update says so (exit $rc): $out"
fi
check "unreachable feed: version $N is still installed" test "$(installed)" = "$N"
rm -f "$feed/down"
for _ in $(seq 50); do curl -s --max-time 1 "http://127.0.0.1:$FEED_PORT/" >/dev/null && break; sleep 0.2; done
check "the agent's container was not touched by the refusals" test "$(container)" = "$before"

# N+1 from the tray menu: Check for Clawdock updates, then Install ... and restart.
cp "$feed/good.json" "$feed/latest.json"
click "Check for Clawdock updates"
install_label="Install Clawdock $NEXT and restart"
for _ in $(seq 60); do [ -n "$(id_of "$install_label")" ] && break; sleep 0.5; done
check "the tray offers \"$install_label\" after Check for Clawdock updates" test -n "$(id_of "$install_label")"
click "$install_label"
for _ in $(seq 240); do api_get /app/update | grep -q "\"current\":\"$NEXT\"" && break; sleep 0.5; done
if api_get /app/update | grep -q "\"current\":\"$NEXT\""; then
  ok "Clawdock $NEXT answers on the API after the update"
else
  no "Clawdock $NEXT answers on the API after the update: $(api_get /app/update)"; tail -20 /tmp/app.out
fi
check "version $NEXT is installed (dpkg: $(installed))" test "$(installed)" = "$NEXT"
check "clawdock --version says $NEXT: $(clawdock --version)" sh -c "clawdock --version | grep -q '^clawdock $NEXT'"
check "the same process runs the new program (pid $app, $(readlink /proc/$app/exe))" \
  sh -c "kill -0 $app && test '$(readlink /proc/$app/exe)' = /usr/bin/clawdock-app"
after=$(container)
check "the agent's container is untouched: same ID, start time and PID ($after)" test "$after" = "$before"
for _ in $(seq 120); do api_get /agents | grep -q '"status":"running"' && break; sleep 0.5; done
if api_get /agents | grep -q '"status":"running"'; then
  ok "Clawdock $NEXT adopted the agent: GET /agents says running"
else
  no "Clawdock $NEXT adopted the agent: $(api_get /agents)"
fi
check "its dashboard still answers" dashboard

# Quit from the new version's tray: the agent stops, the app exits 0.
find_tray "$app"
click "Quit"
for _ in $(seq 300); do kill -0 "$app" 2>/dev/null || break; sleep 0.1; done
for _ in $(seq 20); do [ -s /tmp/app.rc ] && break; sleep 0.1; done
check "Quit ends Clawdock $NEXT with exit code 0 (got $(cat /tmp/app.rc 2>/dev/null))" test "$(cat /tmp/app.rc 2>/dev/null)" = 0
check "Quit stopped the agent's container" sh -c "test -z \"\$(podman ps -q --filter name=clawdock-pkgagent)\""
[ "$(cat /tmp/app.rc 2>/dev/null)" = 0 ] || tail -30 /tmp/app.out
kill "$app" "$dbus" "$xvfb" 2>/dev/null
echo "=== inside done"
