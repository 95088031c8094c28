//! Printing to the terminal that never ends the process. `println!` panics when
//! the terminal is gone (EIO after SIGHUP) or a pipe's reader left (EPIPE), and a
//! panic on an exit path skipped the graceful shutdown: these write, and say
//! whether it worked. Also: noticing that nobody reads `serve`'s output any more.

use std::io::Write;

/// Writes one line to stdout; false when it could not be written.
pub fn out(line: std::fmt::Arguments<'_>) -> bool {
    write_line(&mut std::io::stdout().lock(), line)
}

/// Writes a piece of a line to stdout as it comes (a chat's answer, streamed);
/// false when it could not be written.
pub fn out_piece(piece: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(piece.as_bytes())
        .and_then(|()| stdout.flush())
        .is_ok()
}

/// Writes one line to stderr; false when it could not be written.
pub fn err(line: std::fmt::Arguments<'_>) -> bool {
    write_line(&mut std::io::stderr().lock(), line)
}

fn write_line(to: &mut impl Write, line: std::fmt::Arguments<'_>) -> bool {
    to.write_fmt(line)
        .and_then(|()| to.write_all(b"\n"))
        .and_then(|()| to.flush())
        .is_ok()
}

/// A line someone else wrote (an agent's log) as text a terminal shows but does
/// not obey: control characters (ESC and the rest of C0 but the tab, DEL, and C1,
/// among them the one-character CSI) and Unicode's direction controls (which
/// reorder what is shown) are written out, as `\x1b` and `\u{202e}`. An agent
/// could otherwise retitle the terminal, rewrite what it shows, or set the
/// clipboard (OSC 52).
pub fn inert(line: &str) -> std::borrow::Cow<'_, str> {
    let obeyed = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !line.contains(obeyed) {
        return line.into();
    }
    let mut shown = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        match c {
            c if obeyed(c) && u32::from(c) < 0x80 => {
                shown.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if obeyed(c) => shown.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => shown.push(c),
        }
    }
    shown.into()
}

/// `println!` that cannot panic: the line is lost when stdout is closed (use
/// [`out`] where that matters).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        $crate::console::out(format_args!($($arg)*));
    }};
}

/// `eprintln!` that cannot panic: the line is lost when stderr is closed.
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {{
        $crate::console::err(format_args!($($arg)*));
    }};
}

/// Resolves when the reader of stdout or stderr has gone (`clawdock serve | head
/// -1` after its line, a log pipe whose reader died), naming which. Never resolves
/// for a file, `/dev/null` or a terminal (a closed terminal sends SIGHUP instead),
/// nor where this cannot be watched.
pub async fn reader_gone() -> &'static str {
    #[cfg(unix)]
    {
        tokio::select! {
            () = unix::error_on(std::io::stdout()) => "stdout closed",
            () = unix::error_on(std::io::stderr()) => "stderr closed",
        }
    }
    #[cfg(not(unix))]
    {
        std::future::pending().await
    }
}

#[cfg(unix)]
mod unix {
    use std::os::fd::{AsFd, OwnedFd};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// Waits for the error condition a pipe's write end shows once its last reader
    /// closed (POLLERR). Epoll refuses regular files and `/dev/null`: those, and a
    /// stream that cannot be duplicated, wait for ever.
    pub(super) async fn error_on(stream: impl AsFd) {
        let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
            return std::future::pending().await;
        };
        // SAFETY: `fd` is our own duplicate, owned by the AsyncFd for its whole
        // life: it stays open and names the same file description until dropped.
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::<OwnedFd>::register_with_interest(fd, Interest::ERROR) };
        match registered {
            Ok(fd) => {
                if let Err(e) = fd.ready(Interest::ERROR).await {
                    tracing::debug!(error = %e, "cannot watch an output stream");
                    std::future::pending::<()>().await;
                }
            }
            Err(_not_pollable) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn escapes_and_direction_controls_are_shown_not_obeyed() {
        assert_eq!(inert("plain\ttext, ünïcode"), "plain\ttext, ünïcode");
        assert!(matches!(inert("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            inert("a\x1b]0;t\x07b\x1b[2Jc\r\u{9b}d\u{202e}e\u{7f}"),
            r"a\x1b]0;t\x07b\x1b[2Jc\x0d\u{9b}d\u{202e}e\x7f"
        );
    }
}
