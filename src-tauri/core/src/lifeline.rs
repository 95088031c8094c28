//! Podman's streams (`events`, `logs -f`), which never end by themselves, die with
//! Clawdock however it ends: a `kill -9`, an abort or a crash left `podman events`
//! re-parented to init and running for ever. One-shot calls end by their own
//! timeouts and are not tied: a create cut half-way left a container that never
//! got healthy (the crash suite). On Linux the kernel sends the child SIGKILL when its parent goes
//! (`PR_SET_PDEATHSIG`, set between fork and exec); on Windows every child joins a
//! job object that kills its processes when its last handle closes, which the
//! end of this process does. macOS has neither: there a watchdog process started
//! at the first call is told each child's pid on a pipe, and when that pipe closes
//! (this process ended, however) it kills those that still run as orphans. A
//! mutating call killed that way is a crash mid-call, which the store and the adoption of
//! containers already survive. Calls run on a pseudo-terminal are covered by the
//! terminal itself: its last holder gone, the kernel hangs up on the child.
//!
//! The signal is sent when the *thread* that forked exits: children are started
//! from the async runtime's worker threads (and the panic hook's waiting thread),
//! which live as long as the process needs the child.

/// Makes the child started by `cmd` die with this process.
pub(crate) fn tie(cmd: &mut tokio::process::Command) {
    tie_std(cmd.as_std_mut());
}

/// [`tie`] for a blocking `std` command (the panic hook's).
pub(crate) fn tie_std(cmd: &mut std::process::Command) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the hook runs in the forked child before exec; it only calls
        // async-signal-safe functions (prctl, getppid) and allocates nothing.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || die_with(parent));
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = cmd;
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn die_with(parent: u32) -> std::io::Result<()> {
    // SAFETY: plain system calls on this process, no pointers.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The parent may have died between fork and prctl: then the signal never
        // comes, and the child must not start at all.
        if libc::getppid() as u32 != parent {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

/// Puts a started child where it dies with this process: the job object on
/// Windows, the watchdog's list on macOS; on Linux [`tie`] did it before exec.
pub(crate) fn adopt(child: &tokio::process::Child) {
    #[cfg(windows)]
    windows::adopt(child);
    #[cfg(target_os = "macos")]
    if let Some(pid) = child.id() {
        watchdog::shared().watch(pid);
    }
    #[cfg(not(any(windows, target_os = "macos")))]
    let _ = child;
}

/// The macOS mechanism, also built in the tests on every Unix: a `/bin/sh` that
/// reads pids from its stdin until Clawdock's end closes it, then kills those pids
/// that still run, were re-parented (parent 1: Clawdock is gone) and are podman.
#[cfg(all(unix, any(target_os = "macos", test)))]
pub(crate) mod watchdog {
    use std::io::Write;
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::Mutex;

    /// Reads pids, one a line, to the end; then one listing of every process, and
    /// a kill of ours only: a pid the system gave to another program since has
    /// another parent or another name.
    const SCRIPT: &str = r#"set=' '
while IFS= read -r pid; do set="$set$pid "; done
ps -A -o pid= -o ppid= -o comm= | while read -r pid ppid comm; do
  case "$set" in *" $pid "*)
    if [ "$ppid" = 1 ]; then
      case "$comm" in *podman*) kill -KILL "$pid" 2>/dev/null ;; esac
    fi ;;
  esac
done
"#;

    pub(crate) struct Watchdog {
        /// None when the watchdog could not start: children are then not covered.
        feed: Mutex<Option<ChildStdin>>,
        _process: Option<Child>,
    }

    impl Watchdog {
        /// Starts one, in a process group of its own so that a Ctrl-C meant for
        /// Clawdock's terminal does not end it first.
        pub(crate) fn start() -> Self {
            use std::os::unix::process::CommandExt;
            let started = Command::new("/bin/sh")
                .args(["-c", SCRIPT])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            match started {
                Ok(mut process) => Self {
                    feed: Mutex::new(process.stdin.take()),
                    _process: Some(process),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "no watchdog: podman children may outlive a crash");
                    Self {
                        feed: Mutex::new(None),
                        _process: None,
                    }
                }
            }
        }

        /// Has the watchdog kill `pid` if it outlives this process.
        pub(crate) fn watch(&self, pid: u32) {
            let mut feed = self
                .feed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(pipe) = feed.as_mut() {
                if let Err(e) = writeln!(pipe, "{pid}") {
                    tracing::warn!(error = %e, "the watchdog is gone: podman children may outlive a crash");
                    *feed = None;
                }
            }
        }

        /// Closes the pipe, as the end of this process does.
        #[cfg(test)]
        pub(crate) fn close(&self) {
            let mut feed = self
                .feed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *feed = None;
        }
    }

    /// One per process, like the process whose end it watches.
    #[cfg(target_os = "macos")]
    pub(crate) fn shared() -> &'static Watchdog {
        static WATCHDOG: std::sync::OnceLock<Watchdog> = std::sync::OnceLock::new();
        WATCHDOG.get_or_init(Watchdog::start)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::time::{Duration, Instant};

        fn alive(pid: u32) -> bool {
            Command::new("kill")
                .args(["-0", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        }

        /// An orphaned "podman" (a copy of sleep by that name, its parent gone) is
        /// killed once the pipe closes; an orphan by another name is left alone.
        #[test]
        fn a_watched_orphan_named_podman_dies_when_the_pipe_closes() {
            let dir = tempfile::tempdir().expect("tmp");
            let podman = dir.path().join("podman-stand-in");
            let other = dir.path().join("other-sleeper");
            for copy in [&podman, &other] {
                std::fs::copy("/bin/sleep", copy).expect("copy sleep");
            }
            // Started by a shell that exits at once: their parent becomes 1.
            let orphan = |bin: &std::path::Path| -> u32 {
                let out = Command::new("/bin/sh")
                    .args([
                        "-c",
                        &format!("'{}' 60 >/dev/null 2>&1 & echo $!", bin.display()),
                    ])
                    .output()
                    .expect("sh");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("pid")
            };
            let (ours, theirs) = (orphan(&podman), orphan(&other));
            let watchdog = Watchdog::start();
            watchdog.watch(ours);
            watchdog.watch(theirs);
            assert!(alive(ours) && alive(theirs));

            watchdog.close();

            let began = Instant::now();
            while alive(ours) && began.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let killed = !alive(ours);
            let spared = alive(theirs);
            let _ = Command::new("kill")
                .args([&ours.to_string(), &theirs.to_string()])
                .status();
            assert!(killed, "the orphaned podman outlived the pipe");
            assert!(spared, "only podman processes are killed");
        }
    }
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod windows {
    use std::sync::OnceLock;

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
        SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };

    /// The job's handle, never closed: the system closes it when this process
    /// ends, however it ends, and that kills every process in it.
    struct Job(HANDLE);
    // SAFETY: a job handle may be used from any thread; it is never closed.
    unsafe impl Send for Job {}
    unsafe impl Sync for Job {}

    /// One per process, like the process whose end it stands for.
    static JOB: OnceLock<Option<Job>> = OnceLock::new();

    fn job() -> Option<&'static Job> {
        JOB.get_or_init(|| {
            // SAFETY: plain Win32 calls with valid arguments; the limit structure
            // outlives the call that reads it.
            unsafe {
                let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    tracing::warn!(error = %std::io::Error::last_os_error(), "no job object: podman children may outlive a crash");
                    return None;
                }
                let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let set = SetInformationJobObject(
                    job,
                    JobObjectExtendedLimitInformation,
                    std::ptr::from_ref(&limits).cast(),
                    std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                );
                if set == 0 {
                    tracing::warn!(error = %std::io::Error::last_os_error(), "job object without kill-on-close");
                    return None;
                }
                Some(Job(job))
            }
        })
        .as_ref()
    }

    pub(super) fn adopt(child: &tokio::process::Child) {
        let (Some(job), Some(process)) = (job(), child.raw_handle()) else {
            return;
        };
        // SAFETY: both handles are open: the job's for ever, the child's while
        // `child` is borrowed.
        if unsafe { AssignProcessToJobObject(job.0, process as HANDLE) } == 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "podman child not in the job: it may outlive a crash");
        }
    }
}

/// Asks a child of ours to end (SIGTERM), so it can finish what it is doing.
#[cfg(unix)]
#[allow(unsafe_code)]
pub(crate) fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) touches no memory of ours; the pid is a child not yet
    // reaped (its `Child` is held), so it names no other process.
    let _refused = unsafe { libc::kill(pid, libc::SIGTERM) };
}
