//! The real desktop app under Xvfb with its own D-Bus session: its tray, a
//! StatusNotifierItem, is found as a tray host finds it and its menu read and
//! clicked over D-Bus (`com.canonical.dbusmenu`); "Start all" starts the agents in
//! real Podman, "Quit" stops them and the process exits 0; SIGTERM does the same.
//! The tray app maps no GUI library; the window is a process of its own that ends
//! when it is closed. Screenshots of the window and the menu go to
//! docs/screenshots/.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{instance_label, repo, wait_for, Home, Session, BIN, GUI_LIBRARIES};

/// Reading and clicking the tray menu the app exports over D-Bus.
trait TrayProbe {
    fn gdbus(&self, args: &[&str]) -> String;
    fn call(&self, name: &str, path: &str, method: &str, args: &[&str]) -> String;
    fn bus_names_of(&self, pid: u32) -> Vec<String>;
    fn menu_path(&self, name: &str) -> Option<String>;
    fn layout(&self, name: &str, path: &str) -> Vec<MenuEntry>;
    fn click(&self, name: &str, path: &str, id: u32) -> bool;
    fn screenshot(&self, file: &Path);
    fn viewable(&self, title: &str) -> bool;
    fn close_window(&self, title: &str) -> bool;
}

impl TrayProbe for Session {
    fn gdbus(&self, args: &[&str]) -> String {
        let out = self
            .command("timeout")
            .arg("5")
            .arg("gdbus")
            .args(args)
            .output()
            .expect("gdbus");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `gdbus call` of one method on the session bus.
    fn call(&self, name: &str, path: &str, method: &str, args: &[&str]) -> String {
        let head = [
            "call",
            "--session",
            "-d",
            name,
            "-o",
            path,
            "-m",
            method,
            "--",
        ];
        self.gdbus(&[&head[..], args].concat())
    }

    /// The bus names the app owns, matched by its PID (its connection's unique
    /// name and the StatusNotifierItem's well-known one).
    fn bus_names_of(&self, pid: u32) -> Vec<String> {
        let (dbus, dbus_path) = ("org.freedesktop.DBus", "/org/freedesktop/DBus");
        let names = self.call(dbus, dbus_path, "org.freedesktop.DBus.ListNames", &[]);
        names
            .split('\'')
            .filter(|n| n.starts_with(":1.") || n.starts_with("org.kde.StatusNotifierItem-"))
            .filter(|n| {
                self.call(
                    dbus,
                    dbus_path,
                    "org.freedesktop.DBus.GetConnectionUnixProcessID",
                    &[n],
                )
                .contains(&format!("uint32 {pid},"))
            })
            .map(str::to_string)
            .collect()
    }

    /// The menu of the StatusNotifierItem `name` serves: its `Menu` property, which
    /// is how a tray host finds it.
    fn menu_path(&self, name: &str) -> Option<String> {
        let menu = self.call(
            name,
            "/StatusNotifierItem",
            "org.freedesktop.DBus.Properties.Get",
            &["org.kde.StatusNotifierItem", "Menu"],
        );
        // (<objectpath '/MenuBar'>,)
        let path = menu.split("objectpath '").nth(1)?.split('\'').next()?;
        Some(path.to_string())
    }

    fn layout(&self, name: &str, path: &str) -> Vec<MenuEntry> {
        parse_layout(&self.call(
            name,
            path,
            "com.canonical.dbusmenu.GetLayout",
            &["0", "-1", "[]"],
        ))
    }

    fn click(&self, name: &str, path: &str, id: u32) -> bool {
        let id = id.to_string();
        let out = self.call(
            name,
            path,
            "com.canonical.dbusmenu.Event",
            &[&id, "clicked", "<0>", "0"],
        );
        out.contains("()")
    }

    /// Whether a window of this title is on screen (xwininfo).
    fn viewable(&self, title: &str) -> bool {
        let tree = self
            .command("xwininfo")
            .args(["-root", "-tree"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        tree.lines()
            .filter(|l| l.contains(&format!("\"{title}\"")))
            .filter_map(|l| l.split_whitespace().next())
            .any(|id| {
                self.command("xwininfo")
                    .args(["-id", id])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("IsViewable"))
            })
    }

    /// Closes the windows of this title as a window manager's close button does.
    fn close_window(&self, title: &str) -> bool {
        self.command("python3")
            .arg(repo().join("tests/x11/close-window.py"))
            .arg(title)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn screenshot(&self, file: &Path) {
        let ok = self
            .command("import")
            .args(["-window", "root", "-crop", "980x700+0+0", "+repage"])
            .arg(file)
            .status()
            .expect("import");
        assert!(ok.success(), "screenshot");
    }
}

#[derive(Debug, Clone)]
struct MenuEntry {
    id: u32,
    label: String,
    enabled: bool,
}

/// Reads `(id, {'label': <'...'>, 'enabled': <false>, ...}, [...])` items out of
/// GetLayout's GVariant text.
fn parse_layout(text: &str) -> Vec<MenuEntry> {
    let mut entries = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{'") {
        let before = &rest[..start];
        let id = before
            .trim_end()
            .trim_end_matches(',')
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok());
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
        let props = &rest[start..end];
        if let (Some(id), Some(l)) = (id, props.find("'label': <'")) {
            let label: String = props[l + 11..].chars().take_while(|c| *c != '\'').collect();
            entries.push(MenuEntry {
                id,
                label: label.replace('_', ""),
                enabled: !props.contains("'enabled': <false>"),
            });
        }
        rest = &rest[end..];
    }
    entries
}

/// Draws the exported menu as a menu looks (no tray host runs under Xvfb to show
/// the real one): disabled items grey, an agent's items indented under it.
fn draw_menu(entries: &[MenuEntry], file: &Path) -> bool {
    let row = 26;
    let height = 16 + row * entries.len() as i32;
    let mut cmd = Command::new("convert");
    cmd.args([
        "-size",
        &format!("360x{height}"),
        "xc:#f6f8fa",
        "-font",
        "DejaVu-Sans",
        "-pointsize",
        "14",
    ]);
    cmd.args([
        "-fill",
        "white",
        "-stroke",
        "#d0d7de",
        "-draw",
        &format!("roundrectangle 4,4 355,{} 8,8", height - 5),
        "-stroke",
        "none",
    ]);
    let mut under_agent = false;
    for (i, e) in entries.iter().enumerate() {
        let y = 26 + row * i as i32;
        let header = e.label.contains(" — ");
        if header {
            under_agent = true;
        }
        let indent = if under_agent && !header { 36 } else { 16 };
        let colour = if e.enabled { "#1f2328" } else { "#8c959f" };
        let text = if header {
            format!("{}  ›", e.label)
        } else {
            e.label.clone()
        };
        cmd.args([
            "-fill",
            colour,
            "-annotate",
            &format!("+{indent}+{y}"),
            &text,
        ]);
        if e.label == "Open logs" {
            under_agent = false;
        }
    }
    cmd.arg(file);
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// Clicks the item with this label, reading the layout again if the menu was
/// rebuilt between the read and the click (its item ids change).
fn click_label(session: &Session, name: &str, path: &str, label: &str) {
    for _ in 0..5 {
        let entries = session.layout(name, path);
        if session.click(name, path, find(&entries, label).id) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("could not click `{label}`");
}

fn find<'a>(entries: &'a [MenuEntry], label: &str) -> &'a MenuEntry {
    entries
        .iter()
        .find(|e| e.label == label)
        .unwrap_or_else(|| panic!("no `{label}` in {entries:?}"))
}

fn running(label: &str) -> usize {
    let out = Command::new("podman")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=io.clawdock.home={label}"),
        ])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}

/// Two stopped agents made through `clawdock serve`, so the app starts with them.
/// Names carry the PID: container names are global to Podman.
fn home_with_two_stopped_agents(prefix: &str) -> (Home, String) {
    common::ensure_images();
    let prefix = format!("{prefix}{}", std::process::id() % 10_000);
    let home = Home::new();
    let mut serve = app_command(home.path())
        .args(["serve", "--port", "0"])
        .stdout(Stdio::null())
        .spawn()
        .expect("serve");
    assert!(wait_for(Duration::from_secs(20), || home
        .path()
        .join("api.json")
        .exists()));
    for name in [format!("{prefix}-a"), format!("{prefix}-b")] {
        let out = app_command(home.path())
            .args(["agents", "create", &name])
            .output()
            .expect("create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = app_command(home.path())
            .args(["agents", "stop", &name])
            .output()
            .expect("stop");
        assert!(out.status.success());
    }
    let ok = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    assert_eq!(serve.wait().expect("wait").code(), Some(0));
    let label = instance_label(home.path()).expect("label");
    (home, label)
}

/// What the app's own log (debug level, `<home>/logs`) and the podman processes say,
/// for a failure's message: the tray shows a state, this shows how it got there.
fn app_story(home: &Path) -> String {
    let mut story = String::new();
    let logs = std::fs::read_dir(home.join("logs"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default();
    for log in logs.iter().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("app"))
    }) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        story.push_str(&format!("--- {} (last 60 lines)\n", log.display()));
        for line in &lines[lines.len().saturating_sub(60)..] {
            story.push_str(line);
            story.push('\n');
        }
    }
    let ps = Command::new("ps")
        .args(["-eo", "pid,ppid,etimes,args"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    story.push_str("--- podman processes\n");
    for line in ps.lines().filter(|l| l.contains("podman")) {
        story.push_str(line);
        story.push('\n');
    }
    story
}

/// Each data folder gets its own agent ports: the tests run side by side.
fn port_base(home: &Path) -> u32 {
    let marker = home.join("port-base");
    if let Some(port) = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        return port;
    }
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let port = 25000 + (std::process::id() % 100) * 40 + n * 10;
    std::fs::write(&marker, port.to_string()).expect("port marker");
    port
}

fn app_command(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("CLAWDOCK_HOME", home)
        .env("CLAWDOCK_AGENT_IMAGE", common::IMAGE)
        .env("CLAWDOCK_STOP_TIMEOUT", "2")
        .env("CLAWDOCK_PORT_BASE", port_base(home).to_string())
        .env("CLAWDOCK_API_PORT", "0")
        .env("CLAWDOCK_RESTORE_AGENTS", "0")
        // The login item goes here, never into the user's own autostart folder.
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .env("NO_AT_BRIDGE", "1");
    c
}

/// The app inside the session; `<home>/openers` (see [`common::recording_openers`]) first
/// on its `PATH`.
fn launch(session: &Session, home: &Path) -> Child {
    let mut cmd = app_command(home);
    cmd.env("DISPLAY", &session.display)
        .env("DBUS_SESSION_BUS_ADDRESS", &session.bus)
        .env(
            "PATH",
            format!(
                "{}:{}",
                home.join("openers").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("BROWSER");
    cmd.stdout(Stdio::null()).spawn().expect("app")
}

/// The bus name and menu path of the app's tray, once it is on the bus.
fn wait_for_tray(session: &Session, pid: u32) -> (String, String) {
    let mut found = None;
    assert!(
        wait_for(Duration::from_secs(30), || {
            found = session
                .bus_names_of(pid)
                .into_iter()
                .find_map(|n| session.menu_path(&n).map(|p| (n, p)));
            found.is_some()
        }),
        "the tray appears on D-Bus"
    );
    found.expect("tray")
}

/// The app's window processes (`clawdock-window` children of `pid`) still running.
fn window_processes(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let (state, ppid) = (fields.next(), fields.next());
            comm.ends_with("(clawdock-window")
                && state != Some("Z")
                && ppid == Some(pid.to_string().as_str())
        })
        .collect()
}

/// Whether a process runs (a zombie, ended but not yet reaped, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.split_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _killed = child.kill();
    panic!("the app did not exit within {limit:?}");
}

#[test]
fn tray_menu_over_dbus_starts_all_then_quits_leaving_nothing_running() {
    let (home, label) = home_with_two_stopped_agents("tray");
    let opened = common::recording_openers(home.path());
    let session = Session::start();
    let mut app = launch(&session, home.path());
    let pid = app.id();
    // `clawdock` with no arguments became the tray app: the same process, now
    // running the binary that holds the GUI.
    let mut exe = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            exe.as_ref().and_then(|e| e.file_name()) == Some("clawdock-app".as_ref())
        }),
        "the process runs clawdock-app: {exe:?}"
    );

    let (name, path) = wait_for_tray(&session, pid);
    // The tray app maps no GUI library: the tray is D-Bus messages and the window
    // another process (GTK and WebKit made most of the tray app's 73 MB of PSS).
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    assert!(maps.contains("libc.so"), "the maps were read");
    for library in GUI_LIBRARIES.iter().chain(&["libGLX_mesa", "libayatana"]) {
        assert!(!maps.contains(library), "the tray app maps {library}");
    }
    assert!(
        window_processes(pid).is_empty(),
        "no window at launch: not a first run"
    );
    let mut entries = Vec::new();
    assert!(
        wait_for(Duration::from_secs(20), || {
            entries = session.layout(&name, &path);
            entries.iter().any(|e| e.label.starts_with("0 of 2 agents"))
        }),
        "status line: {entries:?}\n{}",
        app_story(home.path())
    );
    for label in [
        "Start all",
        "Stop all",
        "Update all",
        "Launch at login",
        "Open Clawdock",
        "Quit",
        "Start",
        "Stop",
        "Open dashboard",
        "Open logs",
    ] {
        find(&entries, label);
    }
    assert!(
        entries
            .iter()
            .any(|e| e.label.starts_with("tray") && e.label.contains("-a — stopped")),
        "{entries:?}"
    );
    assert!(find(&entries, "Start all").enabled);
    assert!(!find(&entries, "Stop all").enabled, "nothing runs yet");

    // A picture of the menu as exported, for the README.
    let shots = repo().join("docs/screenshots");
    std::fs::create_dir_all(&shots).expect("shots");
    let drawn = draw_menu(&entries, &shots.join("tray-menu.png"));
    assert!(drawn, "the menu picture was drawn");

    click_label(&session, &name, &path, "Start all");
    assert!(
        wait_for(Duration::from_secs(40), || running(&label) == 2),
        "both agents run"
    );
    assert!(
        wait_for(Duration::from_secs(10), || {
            entries = session.layout(&name, &path);
            entries.iter().any(|e| e.label.starts_with("2 of 2 agents"))
        }),
        "menu updates: {entries:?}"
    );
    assert!(find(&entries, "Stop all").enabled);

    // Open dashboard (issues 23 and 30): the opener's argv holds only the path of a
    // private page, which holds a one-time address on the API; never a token.
    click_label(&session, &name, &path, "Open dashboard");
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&opened)
            .is_ok_and(|t| t.lines().count() >= 2)),
        "the opener was run"
    );
    let store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("agents.json")).expect("store"))
            .expect("json");
    let tokens: Vec<&str> = store
        .as_array()
        .expect("records")
        .iter()
        .map(|agent| agent["token"].as_str().expect("token"))
        .collect();
    let link = common::dashboard_page_link(&opened, home.path(), &tokens);
    let api: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("api.json")).expect("api"))
            .expect("json");
    assert!(
        link.starts_with(&format!("{}/dashboard/", api["url"].as_str().expect("url"))),
        "{link}"
    );
    let visit = || {
        let out = Command::new("curl")
            .args([
                "-s",
                "--noproxy",
                "*",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &link,
            ])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(visit(), "303");
    assert_eq!(visit(), "404", "one visit only");

    // Launch at login: the check item writes the XDG autostart entry and removes it.
    let entry = home.path().join("xdg/autostart/clawdock.desktop");
    assert!(!entry.exists());
    click_label(&session, &name, &path, "Launch at login");
    assert!(
        wait_for(Duration::from_secs(10), || entry.exists()),
        "the autostart entry is written"
    );
    let text = std::fs::read_to_string(&entry).expect("entry");
    assert!(
        text.contains("Exec=\"") && text.contains("/clawdock-app\" --at-login\n"),
        "{text}"
    );
    click_label(&session, &name, &path, "Launch at login");
    assert!(
        wait_for(Duration::from_secs(10), || !entry.exists()),
        "the autostart entry is removed"
    );

    // The window, opened from the tray: a process of its own.
    click_label(&session, &name, &path, "Open Clawdock");
    assert!(
        wait_for(Duration::from_secs(30), || window_processes(pid).len() == 1
            && session.viewable("Clawdock")),
        "the window opens"
    );
    // Time for the page to draw, for the picture only.
    std::thread::sleep(Duration::from_secs(4));
    session.screenshot(&shots.join("window.png"));
    let window = window_processes(pid);

    click_label(&session, &name, &path, "Quit");
    assert_eq!(wait_exit(&mut app, Duration::from_secs(30)), Some(0));
    assert!(
        wait_for(Duration::from_secs(10), || window
            .iter()
            .all(|w| !alive(*w))),
        "the window ends with the app"
    );
    assert_eq!(
        running(&label),
        0,
        "no agent container runs after the app exited"
    );
    assert!(!home.path().join("api.json").exists());
}

#[test]
fn the_window_is_a_process_that_ends_when_closed_and_a_second_launch_shows_it() {
    let home = Home::new();
    // Not a first run: the app starts in the tray alone.
    std::fs::write(home.path().join("agents.json"), "[]").expect("store");
    let session = Session::start();
    let mut app = launch(&session, home.path());
    let pid = app.id();
    let (name, path) = wait_for_tray(&session, pid);
    assert!(window_processes(pid).is_empty(), "no window at launch");

    // A second launch on the same data folder: the first one shows its window and
    // the second ends.
    let mut second = launch(&session, home.path());
    assert_eq!(wait_exit(&mut second, Duration::from_secs(30)), Some(0));
    assert!(
        wait_for(Duration::from_secs(30), || window_processes(pid).len() == 1
            && session.viewable("Clawdock")),
        "the first instance shows its window"
    );
    let window = window_processes(pid)[0];

    // Its close button: the window's process ends, memory and all; the tray stays.
    assert!(session.close_window("Clawdock"), "a window to close");
    assert!(
        wait_for(Duration::from_secs(15), || !alive(window)),
        "the window's process ends when it is closed"
    );
    assert!(alive(pid), "the tray app stays");
    assert!(window_processes(pid).is_empty());
    assert!(find(&session.layout(&name, &path), "Open Clawdock").enabled);

    // Open again from the tray; Quit ends both.
    click_label(&session, &name, &path, "Open Clawdock");
    assert!(
        wait_for(Duration::from_secs(30), || window_processes(pid).len() == 1),
        "the window opens again"
    );
    let window = window_processes(pid)[0];
    click_label(&session, &name, &path, "Quit");
    assert_eq!(wait_exit(&mut app, Duration::from_secs(30)), Some(0));
    assert!(
        wait_for(Duration::from_secs(10), || !alive(window)),
        "the window ends with the app"
    );
}

/// GNOME without the AppIndicator extension: no StatusNotifier host on the bus, so
/// the tray icon would be absent and the app look dead (tauri-apps/tauri #14234).
/// Not a first run (it would open the window anyway): the window opens by itself
/// at the note saying where the controls are, and the app runs on.
#[test]
fn without_a_tray_host_the_window_opens_and_says_where_the_controls_are() {
    let home = Home::new();
    std::fs::write(home.path().join("agents.json"), "[]").expect("store");
    let session = Session::without_tray_host();
    let mut app = launch(&session, home.path());
    let pid = app.id();
    assert!(
        wait_for(Duration::from_secs(30), || window_processes(pid).len() == 1
            && session.viewable("Clawdock")),
        "the window opens when no tray host is there\n{}",
        app_story(home.path())
    );
    let story = app_story(home.path());
    assert!(
        story.contains("no tray host on this desktop: opening the window"),
        "{story}"
    );
    // The tray is still on the bus: a host that starts later shows it.
    let (_name, _path) = wait_for_tray(&session, pid);
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    assert_eq!(wait_exit(&mut app, Duration::from_secs(30)), Some(0));
}

#[test]
fn sigterm_stops_running_agents_without_killing_them_and_exits_zero() {
    let (home, label) = home_with_two_stopped_agents("sigterm");
    let session = Session::start();
    let mut app = launch(&session, home.path());
    assert!(wait_for(Duration::from_secs(30), || home
        .path()
        .join("api.json")
        .exists()));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("api.json")).expect("api"))
            .expect("json");
    let url = info["url"].as_str().expect("url");
    let token = info["token"].as_str().expect("token");
    let started = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{url}/agents/start-all"),
        ])
        .output()
        .expect("curl");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert_eq!(running(&label), 2);
    let ok = Command::new("kill")
        .args(["-TERM", &app.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    assert_eq!(wait_exit(&mut app, Duration::from_secs(30)), Some(0));
    assert_eq!(running(&label), 0);
    // Fault: the app's own shutdown woke its "shutdown begun elsewhere" watch, which
    // took it for a second Quit and killed every agent 2 ms into the routine. The
    // gateways are stopped (SIGTERM, exit 0), never killed (137).
    let codes = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=io.clawdock.home={label}"),
            "--format",
            "{{.ExitCode}}",
        ])
        .output()
        .expect("ps");
    let codes = String::from_utf8_lossy(&codes.stdout).into_owned();
    assert_eq!(
        codes.split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "the agents' exit codes\n{}",
        app_story(home.path())
    );
}
