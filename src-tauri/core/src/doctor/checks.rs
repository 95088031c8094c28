//! The doctor's checks, each a function of what it looks at (a podman binary,
//! a folder of cgroups, the login files, the environment's variables, a port),
//! so each can be shown a broken set-up in a test: Podman missing or too old,
//! an engine that does not answer, a machine absent or stopped and its network
//! helper missing, cgroup controllers missing, no subordinate ids or `newuidmap`,
//! a full disk, a clock that is off, a proxy that does not answer, the API's port
//! taken or its instance not answering.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Finding, OLDEST_PODMAN};
use crate::engine::{Call, Podman};
use crate::machine::Mode;
use crate::settings::Settings;

/// Every check, in the order a set-up depends on them.
pub async fn run_all(settings: &Settings) -> Vec<Finding> {
    let podman = &settings.podman;
    let mut findings = vec![podman_version(podman).await, engine(podman).await];
    findings.extend(machine(podman, settings.mode).await);
    if cfg!(target_os = "linux") && settings.mode == Mode::Native {
        findings.push(cgroups(
            Path::new("/sys/fs/cgroup"),
            crate::engine::socket::process_uid(),
        ));
        findings.push(rootless(
            crate::engine::socket::process_uid(),
            &user_name(),
            Path::new("/etc/subuid"),
            Path::new("/etc/subgid"),
            std::env::var_os("PATH"),
        ));
    }
    let mut places = vec![("the data folder".to_string(), settings.home.clone())];
    if let Some(store) = image_store(podman).await {
        places.push(("Podman's image store".to_string(), store));
    }
    findings.push(disk(&places, MIN_FREE_BYTES));
    findings.push(clock(&clock_url(&settings.agent_image)).await);
    let var = |name: &str| std::env::var(name).ok();
    findings.push(proxy(&var));
    findings.push(api(&settings.home, crate::settings::DEFAULT_API_PORT).await);
    findings
}

/// Podman found, and at least [`OLDEST_PODMAN`].
pub async fn podman_version(podman: &Podman) -> Finding {
    const CHECK: &str = "podman";
    let oldest = format!("{}.{}", OLDEST_PODMAN.0, OLDEST_PODMAN.1);
    let Some(bin) = podman.bin() else {
        return Finding::fail(
            CHECK,
            "Podman is not installed (not on PATH, nor CLAWDOCK_PODMAN).",
            format!(
                "Install Podman {oldest} or newer: {}",
                crate::engine::install_hint()
            ),
        );
    };
    let out = match podman
        .run(Call::new(["--version"]).timeout(Duration::from_secs(10)))
        .await
    {
        Ok(out) => out,
        Err(e) => {
            return Finding::fail(
                CHECK,
                format!("{} does not run: {e}", bin.display()),
                format!(
                "Reinstall Podman ({oldest} or newer), or point CLAWDOCK_PODMAN at a working one."
            ),
            )
        }
    };
    let version = crate::engine::runner::parse_version(&out.stdout);
    let parts: Vec<u32> = version
        .split(['.', '-', '+'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    match parts.as_slice() {
        [major, minor] if (*major, *minor) >= OLDEST_PODMAN => Finding::ok(
            CHECK,
            format!(
                "Podman {version} at {} (the oldest supported is {oldest}).",
                bin.display()
            ),
        ),
        [_, _] => Finding::fail(
            CHECK,
            format!(
                "Podman {version} at {} is older than {oldest}, the oldest Clawdock supports.",
                bin.display()
            ),
            format!("Upgrade Podman to {oldest} or newer (your system's packages, or podman.io)."),
        ),
        _ => Finding::warn(
            CHECK,
            format!(
                "Podman at {} says its version is `{version}`, which Clawdock cannot read.",
                bin.display()
            ),
            format!("Check that it is Podman {oldest} or newer (`podman --version`)."),
        ),
    }
}

/// The engine answers (`podman info`: through the machine's socket in vm mode,
/// the local engine natively).
pub async fn engine(podman: &Podman) -> Finding {
    const CHECK: &str = "engine";
    if podman.bin().is_none() {
        return Finding::skipped(CHECK, "No Podman to ask.");
    }
    let asked = podman
        .run(
            Call::new([
                "info",
                "--format",
                "{{.Host.OS}} {{.Host.RemoteSocket.Path}}",
            ])
            .timeout(Duration::from_secs(30)),
        )
        .await;
    match asked {
        Ok(out) => Finding::ok(
            CHECK,
            format!("Podman's engine answers ({}).", out.stdout.trim()),
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!(
                "Podman's engine does not answer: {}",
                last_line(&e.to_string())
            ),
            "Run `podman info` in a terminal to see why. On macOS and Windows start the \
             machine (`podman machine start`, or Start Podman in Clawdock); on Linux check \
             Podman's storage and your user's session (`loginctl enable-linger $USER` for \
             a server).",
        ),
    }
}

/// The machine (vm mode): one exists, runs, and Podman's network helper
/// (`gvproxy`, and `vfkit` on macOS) is where Podman looks for it.
pub async fn machine(podman: &Podman, mode: Mode) -> Vec<Finding> {
    const CHECK: &str = "machine";
    if mode == Mode::Native {
        return vec![Finding::skipped(
            CHECK,
            "Containers run natively here: no machine.",
        )];
    }
    let Some(bin) = podman.bin() else {
        return vec![Finding::skipped(CHECK, "No Podman to ask.")];
    };
    let mut findings = Vec::new();
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Row {
        name: String,
        #[serde(default)]
        default: bool,
        #[serde(default)]
        running: bool,
    }
    let listed = podman
        .run_json::<Vec<Row>>(
            Call::new(["machine", "list", "--format", "json"]).timeout(Duration::from_secs(30)),
        )
        .await;
    findings.push(match listed {
        Ok(rows) => match rows.iter().find(|r| r.default).or(rows.first()) {
            None => Finding::fail(
                CHECK,
                "There is no Podman machine.",
                "Create it: Clawdock's setup (Set up Podman…), or `podman machine init`.",
            ),
            Some(row) if !row.running => Finding::warn(
                CHECK,
                format!("The Podman machine `{}` is stopped.", row.name),
                "Start it: Start Podman in Clawdock, or `podman machine start`.",
            ),
            Some(row) => Finding::ok(CHECK, format!("The Podman machine `{}` runs.", row.name)),
        },
        Err(e) => Finding::fail(
            CHECK,
            format!("`podman machine list` failed: {}", last_line(&e.to_string())),
            "Run `podman machine list` in a terminal to see why; reinstalling Podman often fixes it.",
        ),
    });
    findings.push(machine_helper(&helper_dirs(bin)));
    findings
}

/// Where Podman looks for its machine's helpers, for the podman at `bin`: beside
/// it (`../libexec/podman`, the installers' layout), then the usual folders.
pub fn helper_dirs(bin: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(parent) = bin.parent() {
        dirs.push(parent.to_path_buf());
        dirs.push(parent.join("../libexec/podman"));
    }
    for dir in [
        "/usr/local/opt/podman/libexec/podman",
        "/opt/homebrew/opt/podman/libexec/podman",
        "/opt/podman/bin",
        "/usr/local/libexec/podman",
        "/usr/libexec/podman",
        "/usr/lib/podman",
    ] {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// The machine's network helper (and its hypervisor helper on macOS) in one of
/// `dirs`.
pub fn machine_helper(dirs: &[PathBuf]) -> Finding {
    const CHECK: &str = "machine helper";
    let mut wanted = vec!["gvproxy"];
    if cfg!(target_os = "macos") {
        wanted.push("vfkit");
    }
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|name| {
            let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
            !dirs.iter().any(|d| d.join(&file).is_file())
        })
        .collect();
    if missing.is_empty() {
        Finding::ok(CHECK, "Podman's machine helpers are installed.")
    } else {
        Finding::fail(
            CHECK,
            format!(
                "Podman's machine helper {} is missing (looked in {}).",
                missing.join(" and "),
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "Reinstall Podman from its installer or Homebrew (`brew reinstall podman`): \
             the machine cannot start or reach the network without it.",
        )
    }
}

/// The cgroup version and the controllers Clawdock's limits need (memory, cpu,
/// pids), delegated to the user when rootless (cgroup v2).
pub fn cgroups(root: &Path, uid: Option<u32>) -> Finding {
    const CHECK: &str = "cgroups";
    let needed = ["memory", "cpu", "pids"];
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    if let Some(top) = read(&root.join("cgroup.controllers")) {
        let uid = uid.unwrap_or(0);
        let delegated = root.join(format!(
            "user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
        ));
        let (controllers, whose) = match (uid, read(&delegated)) {
            (0, _) => (top, "the system's"),
            (_, Some(mine)) => (mine, "delegated to your user"),
            (_, None) => (top, "the system's (no delegation to your user found)"),
        };
        let have: Vec<&str> = controllers.split_whitespace().collect();
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|c| !have.contains(c))
            .collect();
        if missing.is_empty() {
            Finding::ok(
                CHECK,
                format!("cgroup v2; {whose} controllers include memory, cpu and pids."),
            )
        } else {
            Finding::fail(
                CHECK,
                format!(
                    "cgroup v2, but {whose} controllers lack {}: agents' limits cannot be set.",
                    missing.join(", ")
                ),
                "Delegate the controllers to your user: a systemd drop-in \
                 `/etc/systemd/system/user@.service.d/delegate.conf` with `[Service]` and \
                 `Delegate=cpu cpuset io memory pids`, then log in again.",
            )
        }
    } else if root.join("memory").is_dir() {
        Finding::warn(
            CHECK,
            "cgroup v1: memory limits work with runc and the cgroupfs manager only, and \
             a death for memory is read from the cgroup, not from Podman.",
            "Prefer cgroup v2 (`systemd.unified_cgroup_hierarchy=1` on the kernel's command \
             line); with v1 set `runtime = \"runc\"` and `cgroup_manager = \"cgroupfs\"` in \
             containers.conf.",
        )
    } else {
        Finding::fail(
            CHECK,
            format!("No cgroups found at {}.", root.display()),
            "Containers need cgroups: mount the cgroup filesystem (a container or chroot \
             without /sys/fs/cgroup cannot run Podman).",
        )
    }
}

/// Rootless Podman's prerequisites: subordinate uids and gids for the user (at
/// least 65536 of each) and `newuidmap`/`newgidmap`.
pub fn rootless(
    uid: Option<u32>,
    user: &str,
    subuid: &Path,
    subgid: &Path,
    path_var: Option<std::ffi::OsString>,
) -> Finding {
    const CHECK: &str = "rootless";
    let uid = uid.unwrap_or(0);
    if uid == 0 {
        return Finding::skipped(
            CHECK,
            "Running as root: rootless prerequisites do not apply.",
        );
    }
    let mut problems = Vec::new();
    for file in [subuid, subgid] {
        let count: u64 = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.trim().split(':');
                let (who, _start, count) = (parts.next()?, parts.next()?, parts.next()?);
                (who == user || who == uid.to_string()).then(|| count.parse::<u64>().ok())?
            })
            .sum();
        if count < 65536 {
            problems.push(format!(
                "{} gives {user} {count} ids (65536 needed)",
                file.display()
            ));
        }
    }
    let dirs: Vec<PathBuf> = path_var
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for tool in ["newuidmap", "newgidmap"] {
        if !dirs.iter().any(|d| d.join(tool).is_file()) {
            problems.push(format!("{tool} is not on PATH"));
        }
    }
    if problems.is_empty() {
        Finding::ok(
            CHECK,
            format!("{user} has subordinate ids and newuidmap/newgidmap."),
        )
    } else {
        Finding::fail(
            CHECK,
            format!("Rootless Podman cannot map users: {}.", problems.join("; ")),
            format!(
                "Install `uidmap` (Debian, Ubuntu) or `shadow-utils`, and give {user} ids: \
                 `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`, \
                 then `podman system migrate`."
            ),
        )
    }
}

/// Below this, the disk holding images or agents fails the check: an image of
/// the gateway and a workspace or two.
pub const MIN_FREE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Free space where each of `places` lives: a fail below `need`, a warning below
/// twice that.
pub fn disk(places: &[(String, PathBuf)], need: u64) -> Finding {
    const CHECK: &str = "disk";
    let mut said = Vec::new();
    let mut worst = super::Verdict::Ok;
    for (what, path) in places {
        match free_bytes(path) {
            Some(free) => {
                let gib = free as f64 / (1024.0 * 1024.0 * 1024.0);
                said.push(format!("{what} ({}): {gib:.1} GiB free", path.display()));
                if free < need {
                    worst = super::Verdict::Fail;
                } else if free < need * 2 && worst == super::Verdict::Ok {
                    worst = super::Verdict::Warn;
                }
            }
            None => said.push(format!("{what} ({}): free space unknown", path.display())),
        }
    }
    let found = said.join("; ");
    let fix = format!(
        "Free some space (at least {} GiB): `podman image prune` removes unused images; \
         old agents and snapshots are in the data folder.",
        need / (1024 * 1024 * 1024)
    );
    match worst {
        super::Verdict::Fail => Finding::fail(CHECK, found, fix),
        super::Verdict::Warn => Finding::warn(CHECK, found, fix),
        _ => Finding::ok(CHECK, found),
    }
}

/// Free bytes on the filesystem holding `path` (or its nearest existing
/// parent), from POSIX `df -Pk`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let mut at = path;
    while !at.exists() {
        at = at.parent()?;
    }
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(at)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().nth(1)?;
    let available: u64 = row.split_whitespace().nth(3)?.parse().ok()?;
    Some(available * 1024)
}

/// Where the engine keeps its images (`podman info`'s graph root).
async fn image_store(podman: &Podman) -> Option<PathBuf> {
    podman
        .run(
            Call::new(["info", "--format", "{{.Store.GraphRoot}}"])
                .timeout(Duration::from_secs(30)),
        )
        .await
        .ok()
        .map(|o| PathBuf::from(o.stdout.trim()))
        .filter(|p| p.is_absolute())
}

/// The registry of the agents' image, whose `Date` the clock is compared with.
pub fn clock_url(image: &str) -> String {
    match crate::image_check::Reference::parse(image) {
        Some(r) => format!(
            "{}://{}/v2/",
            if r.registry.starts_with("127.") || r.registry.starts_with("localhost") {
                "http"
            } else {
                "https"
            },
            r.registry
        ),
        None => "https://ghcr.io/v2/".into(),
    }
}

/// The clock against a server's `Date` (the image registry's): more than five
/// minutes off breaks TLS and registry tokens. Unreachable: not checked.
pub async fn clock(url: &str) -> Finding {
    const CHECK: &str = "clock";
    let Ok(http) = crate::image_check::client() else {
        return Finding::skipped(CHECK, "No HTTP client.");
    };
    let answer = match http.head(url).send().await {
        Ok(answer) => answer,
        Err(e) => {
            return Finding::skipped(
                CHECK,
                format!("{url} could not be reached to compare clocks ({e})."),
            )
        }
    };
    let Some(theirs) = answer
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
    else {
        return Finding::skipped(CHECK, format!("{url} gave no date to compare with."));
    };
    let off = (chrono::Utc::now() - theirs.with_timezone(&chrono::Utc)).num_seconds();
    if off.abs() > 300 {
        Finding::fail(
            CHECK,
            format!(
                "This computer's clock is {} off from {url}'s ({} s).",
                words_of_secs(off.abs()),
                off
            ),
            "Set the clock right: turn on network time (`timedatectl set-ntp true` on \
             Linux; Date & Time settings elsewhere). A wrong clock breaks TLS and registry logins.",
        )
    } else {
        Finding::ok(
            CHECK,
            format!("The clock agrees with {url}'s within {} s.", off.abs()),
        )
    }
}

fn words_of_secs(secs: i64) -> String {
    match secs {
        s if s >= 3600 => format!("{:.1} hours", s as f64 / 3600.0),
        s if s >= 60 => format!("{} minutes", s / 60),
        s => format!("{s} s"),
    }
}

/// The proxy variables: each parses and its proxy answers (a TCP connect); a
/// loopback proxy for agents must listen beyond 127.0.0.1.
pub fn proxy(var: &dyn Fn(&str) -> Option<String>) -> Finding {
    const CHECK: &str = "proxy";
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for name in super::PROXY_VARIABLES {
        let Some(value) = var(name).filter(|v| !v.trim().is_empty() && v != "off") else {
            continue;
        };
        let shown = crate::agent_proxy::mask(&value);
        let Ok(url) = reqwest::Url::parse(&value) else {
            problems.push(format!("{name}={shown} is not a URL"));
            continue;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            problems.push(format!("{name}={shown} names no host"));
            continue;
        };
        seen.push(format!("{name}={shown}"));
        let reached = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|addr: SocketAddr| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
            });
        if !reached {
            problems.push(format!("{name}={shown}: nothing answers at {host}:{port}"));
        }
    }
    if problems.is_empty() {
        if seen.is_empty() {
            Finding::ok(CHECK, "No proxy is set.")
        } else {
            Finding::ok(CHECK, format!("The proxies answer: {}.", seen.join(", ")))
        }
    } else {
        Finding::fail(
            CHECK,
            format!("A proxy setting is wrong: {}.", problems.join("; ")),
            "Fix the variable (scheme://host:port) or unset it; for agents only, \
             CLAWDOCK_AGENT_PROXY sets another proxy or `off`.",
        )
    }
}

/// The API: a running instance answers at the address its `api.json` names;
/// with none running, the default port is free for one.
pub async fn api(home: &Path, port: u16) -> Finding {
    const CHECK: &str = "api";
    match crate::instance::running_instance(home) {
        Ok(info) => {
            let answered = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .ok();
            let answered = match answered {
                Some(http) => http
                    .get(format!("{}/agents/runtime-status", info.url))
                    .bearer_auth(&info.token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                None => false,
            };
            if answered {
                Finding::ok(
                    CHECK,
                    format!(
                        "Clawdock runs (pid {}) and answers at {}.",
                        info.pid, info.url
                    ),
                )
            } else {
                Finding::fail(
                    CHECK,
                    format!(
                        "Clawdock runs (pid {}) but does not answer at {}.",
                        info.pid, info.url
                    ),
                    "Quit it (`clawdock quit`, or end the process) and start it again; its \
                     log says what happened.",
                )
            }
        }
        Err(_) => match TcpListener::bind(("127.0.0.1", port)) {
            Ok(_free) => Finding::ok(
                CHECK,
                format!("Clawdock is not running; its port {port} is free."),
            ),
            Err(e) => Finding::fail(
                CHECK,
                format!("Clawdock is not running, and its port {port} is taken ({e})."),
                format!(
                    "Find the program on port {port} (`ss -ltnp 'sport = :{port}'`) and stop \
                     it, or run `clawdock serve --port N` with another port."
                ),
            ),
        },
    }
}

fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string()
}
