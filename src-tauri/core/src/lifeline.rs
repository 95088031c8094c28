//! Every process Clawdock starts dies with it, however Clawdock ends: a `kill -9`,
//! an abort or a crash left `podman events` re-parented to init and running for
//! ever. On Linux the kernel sends the child SIGKILL when its parent goes
//! (`PR_SET_PDEATHSIG`, set between fork and exec). A mutating call killed that way
//! is a crash mid-call, which the store and the adoption of containers already
//! survive. Calls run on a pseudo-terminal are covered by the terminal itself: its
//! last holder gone, the kernel hangs up on the child (SIGHUP).
//!
//! The signal is sent when the *thread* that forked exits: children are started
//! from the async runtime's worker threads (and the panic hook's waiting thread),
//! which live as long as the process needs the child.

/// Makes the child started by `cmd` die with this process.
pub(crate) fn tie(cmd: &mut tokio::process::Command) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
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

/// [`tie`] for a blocking `std` command (the panic hook's).
pub(crate) fn tie_std(cmd: &mut std::process::Command) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: as in `tie`.
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
