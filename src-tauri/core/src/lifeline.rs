//! Every process Clawdock starts dies with it, however Clawdock ends: a `kill -9`,
//! an abort or a crash left `podman events` re-parented to init and running for
//! ever. On Linux the kernel sends the child SIGKILL when its parent goes
//! (`PR_SET_PDEATHSIG`, set between fork and exec); on Windows every child joins a
//! job object that kills its processes when its last handle closes, which the
//! end of this process does. macOS has neither: not covered yet. A mutating call
//! killed that way is a crash mid-call, which the store and the adoption of
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

/// Puts a started child in the job that dies with this process (Windows; a no-op
/// elsewhere, where [`tie`] did the work before exec).
pub(crate) fn adopt(child: &tokio::process::Child) {
    #[cfg(windows)]
    windows::adopt(child);
    #[cfg(not(windows))]
    let _ = child;
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
