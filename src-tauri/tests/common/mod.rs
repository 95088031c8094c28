//! What the end-to-end tests of the real binary share: the binary, the test
//! images, named waits, `clawdock serve` ([`Serve`]) and its API ([`api::Api`]),
//! clean-up of an instance's containers, and a headless desktop session (Xvfb and
//! a D-Bus session bus of the test's own).
#![allow(dead_code)] // each test target uses a different part

pub mod api;
#[path = "../../core/tests/support/engine_proxy.rs"]
pub mod engine_proxy;
pub mod fake_state;
#[path = "../../core/tests/support/images.rs"]
pub mod images;
pub mod instance_containers;
#[path = "../../examples/tray_host/watcher.rs"]
mod tray_host;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use api::Api;

/// The command line and `serve`; with no arguments it becomes [`APP`].
pub const BIN: &str = env!("CARGO_BIN_EXE_clawdock");
/// The tray app: the core, the API and the tray; it starts [`WINDOW`] when the
/// window is opened.
pub const APP: &str = env!("CARGO_BIN_EXE_clawdock-app");
/// The window, the one program linked with the GUI libraries.
pub const WINDOW: &str = env!("CARGO_BIN_EXE_clawdock-window");
/// Libraries of the GUI stack (WebKitGTK, GTK, libsoup, flite for WebKit's speech):
/// only the window may map them.
pub const GUI_LIBRARIES: &[&str] = &[
    "libwebkit2gtk",
    "libjavascriptcoregtk",
    "libgtk-3",
    "libgdk-3",
    "libsoup",
    "libflite",
];
pub const IMAGE: &str = "localhost/clawdock-test-gateway:latest";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the stand-in gateway images (cached by recipe: quick after the first time).
pub fn ensure_images() {
    let ok = Command::new(repo().join("tests/images/build-test-images.sh"))
        .stdout(Stdio::null())
        .status()
        .expect("build-test-images.sh");
    assert!(ok.success(), "building the test images failed");
}

/// Checks `check` every 100 ms until it holds, for at most `limit`; whether it held.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// [`wait_for`] for a check that asks over the network: runs `check` every 100 ms
/// until it gives `Ok`, for at most `limit`; its last `Err` when the time is up
/// (what the test then says it saw).
pub async fn until_ok<T, E>(
    limit: Duration,
    check: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    until_ok_every(limit, Duration::from_millis(100), check).await
}

/// [`until_ok`], every `every`: for a check that also acts (sends a signal again)
/// and should not act more often.
pub async fn until_ok_every<T, E>(
    limit: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    let end = Instant::now() + limit;
    loop {
        match check().await {
            Ok(done) => return Ok(done),
            Err(last) if Instant::now() >= end => return Err(last),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// A negative check: runs `check` every 100 ms for the whole of `limit`, and stops
/// at its first `Err` (what must not happen, seen).
pub async fn throughout<E>(
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<(), E>,
) -> Result<(), E> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        check().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Whether process `pid` lives (a zombie has ended: only its status is left).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|i| !stat[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

/// Sends signal `name` (`TERM`, `HUP`, ...) to process `pid`; whether it was sent.
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The label value that marks the containers of the instance using `home`.
pub fn instance_label(home: &Path) -> Option<String> {
    std::fs::read_to_string(home.join("instance-id"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Removes every container of the instance using `home`.
pub fn remove_containers(home: &Path) {
    if let Some(label) = instance_label(home) {
        instance_containers::remove_all(&label);
    }
}

/// A temporary data folder whose containers go when the test ends, passed or not.
pub struct Home(pub tempfile::TempDir);

impl Home {
    pub fn new() -> Self {
        Self(tempfile::tempdir().expect("home"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        remove_containers(self.path());
    }
}

/// An X server and a session bus of the test's own; both end with it. On the bus,
/// unless asked otherwise, a desktop's tray host as the app sees one: the
/// `org.kde.StatusNotifierWatcher` saying a host is registered (a stand-in: no
/// tray host runs under Xvfb to draw the icon; the tests read the menu over D-Bus).
pub struct Session {
    children: Vec<Child>,
    pub display: String,
    pub bus: String,
    tray_host: Option<zbus::blocking::Connection>,
}

impl Session {
    /// A desktop with a tray host.
    pub fn start() -> Self {
        let mut session = Self::without_tray_host();
        let bus = session.bus.clone();
        // zbus's blocking connection runs its own executor: made on a thread of
        // its own, it works from async tests too (a runtime cannot block on one).
        let host = std::thread::spawn(move || {
            tray_host::serve(&bus).expect("the stand-in tray host on the session bus")
        })
        .join()
        .expect("the tray host's thread");
        session.tray_host = Some(host);
        session
    }

    /// A desktop with no tray host: GNOME without the AppIndicator extension.
    pub fn without_tray_host() -> Self {
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt install xvfb)");
        let display = first_line(&mut xvfb);
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let bus = first_line(&mut dbus);
        Self {
            children: vec![xvfb, dbus],
            display: format!(":{display}"),
            bus,
            tray_host: None,
        }
    }

    /// A command that runs inside this session.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("NO_AT_BRIDGE", "1");
        c
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(host) = self.tray_host.take() {
            let _closed = std::thread::spawn(move || drop(host)).join();
        }
        for child in &mut self.children {
            let _gone = child.kill();
            let _reaped = child.wait();
        }
    }
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    line.trim().to_string()
}

/// Runs the CLI against the data folder `home`.
pub fn clawdock(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("CLAWDOCK_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run clawdock")
}

/// A `clawdock serve --port 0` of the test's own on a data folder: the one way the
/// tests start `serve` (but on a terminal, which `portable_pty` or `script` makes).
/// However the test ends, no serve is left: dropped, it is stopped (SIGTERM, then
/// SIGKILL after 30 s) and reaped; its containers are [`Home`]'s to remove.
pub struct Serve {
    pub child: Child,
    /// What it printed up to and including its `Web UI:` line, when the harness read
    /// its stdout ([`Launch::start`] with the default stdout); empty otherwise.
    pub printed: Vec<String>,
    home: PathBuf,
    /// Its API, once its `api.json` was read (the first [`Serve::api`]).
    api: OnceLock<Api>,
}

/// How a [`Serve`] is started. The defaults: the stand-in gateway image, a stop
/// timeout of 2 s, stdin from nothing, stdout read by the harness up to the banner,
/// stderr the test's; each call changes one.
pub struct Launch {
    command: Command,
    home: PathBuf,
    /// The test gave stdout: the harness reads nothing from it.
    own_stdout: bool,
}

impl Launch {
    /// An environment variable; it overrides a default of the harness.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        self.command.envs(vars);
        self
    }

    /// Its stdout, for a test that reads it itself (a pipe) or wants none.
    pub fn stdout(mut self, out: Stdio) -> Self {
        self.command.stdout(out);
        self.own_stdout = true;
        self
    }

    pub fn stderr(mut self, err: Stdio) -> Self {
        self.command.stderr(err);
        self
    }

    /// Stdout and stderr to nothing.
    pub fn quiet(self) -> Self {
        self.stdout(Stdio::null()).stderr(Stdio::null())
    }

    /// A process group of its own, as a shell gives a job in a terminal (the one
    /// a terminal's Ctrl-C reaches).
    pub fn own_process_group(mut self) -> Self {
        use std::os::unix::process::CommandExt;
        self.command.process_group(0);
        self
    }

    /// Starts it and returns at once, before it serves (for a serve that is to
    /// refuse to start, or whose stdout the test reads first); its stdout, unless
    /// given, goes to nothing.
    pub fn spawn(mut self) -> Serve {
        if !self.own_stdout {
            self.command.stdout(Stdio::null());
        }
        self.spawned()
    }

    /// Starts it and returns once it serves: its banner read (with the default
    /// stdout) and its `api.json` written.
    pub fn start(mut self) -> Serve {
        let read_banner = !self.own_stdout;
        if read_banner {
            self.command.stdout(Stdio::piped());
        }
        let mut serve = self.spawned();
        if read_banner {
            serve.printed = read_until_web_ui(serve.child.stdout.take().expect("stdout"));
        }
        serve.api();
        serve
    }

    fn spawned(mut self) -> Serve {
        Serve {
            child: self.command.spawn().expect("serve"),
            printed: Vec::new(),
            home: self.home,
            api: OnceLock::new(),
        }
    }
}

impl Serve {
    /// Starts one on `home` with the defaults of [`Launch`].
    pub fn start(home: &Path) -> Self {
        Self::launch(home).start()
    }

    /// `start` with more environment variables.
    pub fn start_with(home: &Path, env: &[(&str, &str)]) -> Self {
        Self::launch(home).envs(env.iter().copied()).start()
    }

    /// One on `home` to start after changing what the test needs.
    pub fn launch(home: &Path) -> Launch {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--port", "0"])
            .env("CLAWDOCK_HOME", home)
            .env("CLAWDOCK_AGENT_IMAGE", IMAGE)
            .env("CLAWDOCK_STOP_TIMEOUT", "2")
            .stdin(Stdio::null());
        Launch {
            command,
            home: home.to_path_buf(),
            own_stdout: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its API, as its `api.json` says (waited for the first time, up to 30 s).
    pub fn api(&self) -> &Api {
        self.api
            .get_or_init(|| Api::of(&self.home, self.child.id()))
    }

    /// Sends it signal `name` (`TERM`, `HUP`, `INT`, ...).
    pub fn signal(&self, name: &str) {
        assert!(signal(self.child.id(), name), "kill -{name} failed");
    }

    /// Its exit status once it exits, or `None` if it still runs after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_for(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// `kill -9`: no shutdown, nothing of Clawdock's runs its course.
    pub fn kill9(&mut self) {
        let _sent = self.child.kill();
        let _reaped = self.child.wait();
    }

    /// SIGTERM, then the exit status (within 30 s).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _sent = signal(self.child.id(), "TERM");
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.stop().is_none() {
            self.kill9();
        }
    }
}

/// Lines of a serve's stdout up to its `Web UI:` line (the last it prints at
/// start); the rest is left to drain into nothing.
pub fn read_until_web_ui(out: impl std::io::Read + Send + 'static) -> Vec<String> {
    let mut reader = std::io::BufReader::new(out);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let done = line.starts_with("Web UI:");
                lines.push(line.trim_end().to_string());
                if done {
                    break;
                }
            }
        }
    }
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    lines
}

/// Openers (`xdg-open` and the others the `open` crate tries) that only note their
/// argv, one per line, in the returned file; first on the app's `PATH`.
pub fn recording_openers(home: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = home.join("openers");
    std::fs::create_dir_all(&dir).expect("openers");
    let record = home.join("opener-argv.log");
    for opener in [
        "xdg-open",
        "gio",
        "gnome-open",
        "kde-open",
        "wslview",
        "sensible-browser",
    ] {
        let path = dir.join(opener);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" >> '{}'\n",
                record.display()
            ),
        )
        .expect("opener");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    record
}

/// The longest run of hex digits in `text` (a ticket is 64 of them).
fn longest_hex_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// What a recording opener (see [`recording_openers`]) was given for "Open
/// dashboard" (issue 30, item 1): its command line must hold nothing usable (no
/// address, no ticket, none of `secrets`), only the path of a page in
/// `<home>/open/`, 0600 in a 0700 folder, which another user can neither read nor
/// fetch (tried as `nobody` when the test runs as root). Gives back the one-time
/// address the page sends the browser to.
pub fn dashboard_page_link(argv_log: &Path, home: &Path, secrets: &[&str]) -> String {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let recorded = std::fs::read_to_string(argv_log).expect("opener argv");
    let args: Vec<&str> = recorded.lines().skip(1).collect();
    assert_eq!(args.len(), 1, "one argument for the opener: {recorded}");
    for secret in secrets {
        assert!(
            !recorded.contains(secret),
            "a secret on the opener's argv: {recorded}"
        );
    }
    assert!(
        !recorded.contains("http") && !recorded.contains("token"),
        "an address on the opener's argv: {recorded}"
    );
    assert!(
        longest_hex_run(&recorded) < 64,
        "a ticket on the opener's argv: {recorded}"
    );
    let page = Path::new(args[0]);
    let folder = home.join("open");
    assert_eq!(page.parent(), Some(folder.as_path()), "{}", page.display());
    let meta = std::fs::metadata(page).expect("the page");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "the page is private"
    );
    let folder_meta = std::fs::metadata(&folder).expect("its folder");
    assert_eq!(folder_meta.permissions().mode() & 0o777, 0o700);
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    assert_eq!(meta.uid(), me, "the page is the user's");
    if me == 0 {
        // What another local user gets from what the command line names.
        for probe in [
            vec!["cat".to_string(), page.display().to_string()],
            vec![
                "curl".into(),
                "-sS".into(),
                format!("file://{}", page.display()),
            ],
        ] {
            let out = Command::new(&probe[0])
                .args(&probe[1..])
                .uid(65534)
                .gid(65534)
                .output()
                .expect("probe as nobody");
            assert!(!out.status.success(), "{probe:?} worked for another user");
            assert!(out.stdout.is_empty(), "{probe:?} read something");
        }
    }
    let html = std::fs::read_to_string(page).expect("the page, as its user");
    let link = html
        .split_once("location.replace(\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(link, _)| link.to_string())
        .unwrap_or_else(|| panic!("no address in the page: {html}"));
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");
    link
}
