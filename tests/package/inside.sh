#!/usr/bin/env bash
# Runs inside the clean Debian 12 root made by tests/package/run.sh (as root, in a
# chroot): installs the package, checks what was installed, removes it. Each check
# prints "ok - ..." or "not ok - ...".
set -uo pipefail
deb=$1
export DEBIAN_FRONTEND=noninteractive
ok() { echo "ok - $*"; }
no() { echo "not ok - $*"; }
check() { # description, command...
  local what=$1; shift
  if "$@"; then ok "$what"; else no "$what"; fi
}
user=tester
uhome=/home/$user
as_user() { runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$uhome" LANG=C.UTF-8 NO_AT_BRIDGE=1 "$@"; }

apt-get update -qq >/dev/null 2>&1 || apt-get update
echo "--- apt-get install $deb"
if apt-get install -y -q --no-install-recommends "$deb" > /tmp/install.log 2>&1; then
  ok "apt-get install ./$(basename "$deb") resolves its dependencies ($(grep -c '^Setting up' /tmp/install.log) packages set up)"
else
  tail -20 /tmp/install.log; no "apt-get install ./$(basename "$deb")"; echo "=== inside done"; exit 0
fi
dpkg -L clawdock | sort > /tmp/files.txt
check "the package recommends podman" sh -c "dpkg-query -W -f='\${Recommends}' clawdock | grep -qw podman"
for b in clawdock clawdock-app clawdock-window; do
  check "/usr/bin/$b is installed and executable" test -x /usr/bin/$b
  missing=$(ldd /usr/bin/$b 2>&1 | grep 'not found')
  check "/usr/bin/$b finds every library it links ${missing:+($missing)}" sh -c "test -x /usr/bin/$b && test -z '$missing'"
done
# What runs all day links no GUI library: the tray is D-Bus messages; only the
# window (its own process, while open) links WebKitGTK.
gui=$(ldd /usr/bin/clawdock-app 2>&1 | grep -oE 'lib(webkit2gtk|gtk-3|gdk-3|javascriptcoregtk|ayatana)[^ ]*' | paste -sd ' ')
check "/usr/bin/clawdock-app links no GUI library ${gui:+($gui)}" test -z "$gui"
check "/usr/bin/clawdock-window links WebKitGTK" sh -c "ldd /usr/bin/clawdock-window | grep -q libwebkit2gtk"
useradd -m -s /bin/bash "$user"
v=$(as_user /usr/bin/clawdock --version 2>&1)
check "clawdock --version: $v" sh -c "echo '$v' | grep -q '^clawdock $(dpkg-query -W -f='${Version}' clawdock)'"

# The tools of the test only (the package is installed and checked already).
echo "--- installing the test's tools (xvfb, dbus, gdbus, curl)"
apt-get install -y -q --no-install-recommends xvfb xauth dbus dbus-x11 libglib2.0-bin curl procps > /tmp/tools.log 2>&1 \
  || { tail -20 /tmp/tools.log; no "the test's tools install"; }

# serve, with no Podman anywhere in this root.
check "no podman in this root" sh -c '! command -v podman'
as_user sh -c '/usr/bin/clawdock serve --port 0 > /tmp/serve.out 2>&1 & echo $! > /tmp/serve.pid'
api=$uhome/.local/share/clawdock/api.json
for _ in $(seq 100); do [ -s "$api" ] && break; sleep 0.1; done
if [ -s "$api" ]; then
  url=$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$api" | head -1)
  token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$api" | head -1)
  status=$(curl -s -w ' HTTP %{http_code}' -H "Authorization: Bearer $token" "$url/agents/runtime-status")
  check "serve: GET /agents/runtime-status with api.json's token answers 200: $status" sh -c "echo '$status' | grep -q 'HTTP 200\$'"
  noauth=$(curl -s -o /dev/null -w '%{http_code}' "$url/agents/runtime-status")
  check "serve: without the token it answers 401 ($noauth)" test "$noauth" = 401
  cli=$(as_user /usr/bin/clawdock status 2>&1); rc=$?
  check "clawdock status against serve exits 0: $(echo "$cli" | head -1)" test $rc = 0
else
  no "serve wrote $api"; cat /tmp/serve.out
fi
pid=$(cat /tmp/serve.pid)
kill -TERM "$pid" 2>/dev/null
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check "serve ends on SIGTERM and removes api.json" sh -c "! kill -0 $pid 2>/dev/null && test ! -e '$api'"

# The tray app under Xvfb with a private session bus, launched as the desktop entry
# launches it (`clawdock`, which becomes /usr/bin/clawdock-app).
as_user sh -c 'Xvfb -displayfd 1 -screen 0 1280x800x24 -nolisten tcp > /tmp/display 2>/dev/null & echo $! > /tmp/xvfb.pid
  dbus-daemon --session --nofork --print-address=1 > /tmp/bus 2>/dev/null & echo $! > /tmp/dbus.pid'
for _ in $(seq 50); do [ -s /tmp/display ] && [ -s /tmp/bus ] && break; sleep 0.1; done
display=:$(head -1 /tmp/display); bus=$(head -1 /tmp/bus)
in_session() { as_user env DISPLAY="$display" DBUS_SESSION_BUS_ADDRESS="$bus" "$@"; }
in_session sh -c 'CLAWDOCK_API_PORT=0 /usr/bin/clawdock > /tmp/app.out 2>&1 & echo $! > /tmp/app.pid; wait $!; echo $? > /tmp/app.rc' &
sleep 0.5
app=$(cat /tmp/app.pid)
gd() { in_session timeout 5 gdbus "$@" 2>/dev/null; }
name="" menu=""
for _ in $(seq 60); do
  for n in $(gd call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.ListNames | grep -o "':1\.[0-9]*'" | tr -d "'"); do
    gd call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.GetConnectionUnixProcessID "$n" | grep -q "uint32 $app," || continue
    # The StatusNotifierItem names its menu, as a tray host reads it.
    path=$(gd call --session -d "$n" -o /StatusNotifierItem -m org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierItem Menu | sed -n "s/.*objectpath '\([^']*\)'.*/\1/p")
    if [ -n "$path" ]; then name=$n; menu=$path; break 2; fi
  done
  sleep 0.5
done
check "the app runs as /usr/bin/clawdock-app ($(readlink /proc/$app/exe))" test "$(readlink /proc/$app/exe)" = /usr/bin/clawdock-app
check "the tray menu is exported over D-Bus ($menu)" test -n "$menu"
layout() { gd call --session -d "$name" -o "$menu" -m com.canonical.dbusmenu.GetLayout -- 0 -1 '[]'; }
id_of() { layout | grep -oE "\(([0-9]+), \{[^}]*\}" | tr -d _ | grep -F "'label': <'$1'>" | head -1 | grep -oE '^\([0-9]+' | tr -d '('; }
click() { local id; id=$(id_of "$1"); [ -n "$id" ] && gd call --session -d "$name" -o "$menu" -m com.canonical.dbusmenu.Event -- "$id" clicked '<0>' 0 | grep -q '()'; }
if [ -n "$menu" ]; then
  for _ in $(seq 40); do layout | grep -q "agents" && break; sleep 0.5; done
  labels=$(layout | grep -oE "'label': <'[^']*'>" | sed "s/'label': <'//; s/'>//" | tr -d _ | paste -sd '|')
  echo "    menu: $labels"
  for l in "Start all" "Stop all" "Launch at login" "Open Clawdock" "Quit"; do
    check "the tray menu has \"$l\"" sh -c "echo '$labels' | tr '|' '\n' | grep -qx '$l'"
  done
  entry=$uhome/.config/autostart/clawdock.desktop
  click "Launch at login"
  for _ in $(seq 50); do [ -f "$entry" ] && break; sleep 0.2; done
  check "\"Launch at login\" writes the autostart entry naming /usr/bin/clawdock-app: $(grep '^Exec=' "$entry" 2>/dev/null)" \
    grep -qx 'Exec="/usr/bin/clawdock-app" --at-login' "$entry"
  click "Launch at login"
  for _ in $(seq 50); do [ -f "$entry" ] || break; sleep 0.2; done
  check "\"Launch at login\" again removes it" test ! -e "$entry"
  click "Quit"
fi
for _ in $(seq 300); do kill -0 "$app" 2>/dev/null || break; sleep 0.1; done
for _ in $(seq 20); do [ -s /tmp/app.rc ] && break; sleep 0.1; done
check "the app quits from its tray menu with exit code 0 (got $(cat /tmp/app.rc 2>/dev/null))" test "$(cat /tmp/app.rc 2>/dev/null)" = 0
kill "$app" 2>/dev/null; kill "$(cat /tmp/dbus.pid)" "$(cat /tmp/xvfb.pid)" 2>/dev/null
[ "$(cat /tmp/app.rc 2>/dev/null)" = 0 ] || tail -20 /tmp/app.out

# Shell completions (issue 32), where each shell looks for a package's.
for f in /usr/share/bash-completion/completions/clawdock /usr/share/zsh/vendor-completions/_clawdock \
  /usr/share/fish/vendor_completions.d/clawdock.fish; do
  check "shell completion $f names the doctor" sh -c "grep -q doctor '$f'"
done

# The desktop entry and the icons.
desktop=$(grep '^/usr/share/applications/.*\.desktop$' /tmp/files.txt | head -1)
check "desktop entry $desktop runs clawdock" sh -c "test -n '$desktop' && grep -qE '^Exec=(/usr/bin/)?clawdock( |$)' '$desktop'"
icon=$(sed -n 's/^Icon=//p' "$desktop" 2>/dev/null)
for size in 32x32 128x128 256x256 512x512; do
  f=$(grep -E "^/usr/share/icons/hicolor/${size}/apps/$icon\.png$" /tmp/files.txt | head -1)
  check "icon $size ($f)" sh -c "test -n '$f' && test -s '$f'"
done

# Removal: no file of the package left; directories left only where another
# package owns them; the user's data folder stays.
data=$uhome/.local/share/clawdock
check "the user's data folder exists before removal" test -d "$data"
apt-get remove -y -q clawdock > /tmp/remove.log 2>&1 || { tail /tmp/remove.log; no "apt-get remove -y clawdock"; }
left=""
while read -r p; do
  if [ -d "$p" ] && [ ! -L "$p" ]; then
    dpkg -S "$p" >/dev/null 2>&1 || left="$left $p"
  elif [ -e "$p" ] || [ -L "$p" ]; then
    left="$left $p"
  fi
done < /tmp/files.txt
check "apt-get remove leaves none of the package's $(wc -l < /tmp/files.txt) paths behind${left:+:$left}" test -z "$left"
check "the user's data folder stays after removal" test -d "$data"
echo "=== inside done"
