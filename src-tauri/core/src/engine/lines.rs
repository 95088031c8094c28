//! Lines of output as they come, from a podman process or an API stream: split,
//! bounded, cleaned of terminal codes, and the tail an error keeps.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How many stderr lines an error keeps: enough to show the cause, bounded so a
/// chatty command cannot grow memory.
const STDERR_TAIL_LINES: usize = 20;

/// Longest line handed to a line callback or a [`LineStream`]: longer ones (an
/// agent printing a megabyte without a newline) are cut to this many bytes and
/// end with [`CUT_MARK`].
pub const MAX_LINE: usize = 16 * 1024;

/// What ends a line that was cut at [`MAX_LINE`].
pub const CUT_MARK: &str = " [... cut]";

/// Which pipe a line came from. A call on a terminal has one stream, given as
/// `Stderr`: Podman draws its progress there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives output lines while a command runs (progress of `machine init`, pulls).
pub type LineSink = Arc<dyn Fn(Stream, &str) + Send + Sync>;

/// Lines of a request to the engine's API that goes on until stopped (events,
/// logs that follow). Dropping it closes the connection.
pub struct LineStream {
    reader: AbortOnDrop,
    lines: mpsc::Receiver<(Stream, String)>,
}

/// A task that reads a streamed answer, ended with its connection when dropped.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl LineStream {
    /// The lines a task reads from a streamed answer.
    pub(crate) fn from_task(lines: mpsc::Receiver<(Stream, String)>, task: JoinHandle<()>) -> Self {
        Self {
            reader: AbortOnDrop(Some(task)),
            lines,
        }
    }

    /// The next line, or `None` when the output ended (the process exited, the
    /// engine closed the answer).
    pub async fn next_line(&mut self) -> Option<(Stream, String)> {
        self.lines.recv().await
    }

    /// Waits for the reading task after the output ended (the engine closed the
    /// answer).
    pub async fn finish(mut self) {
        if let Some(task) = self.reader.0.take() {
            let _ended = task.await;
        }
    }
}

/// Splits bytes into lines as they arrive: each line at most [`MAX_LINE`] bytes
/// (the rest dropped, [`CUT_MARK`] appended), decoded lossily so no byte sequence
/// ends a stream, trailing `\r` removed. `\r` ends a line too where progress bars
/// redraw with it (stderr, a terminal).
pub(crate) struct LineSplitter {
    current: Vec<u8>,
    cut: bool,
    also_cr: bool,
}

impl LineSplitter {
    pub(crate) fn new(also_cr: bool) -> Self {
        Self {
            current: Vec::new(),
            cut: false,
            also_cr,
        }
    }

    /// Feeds bytes; every line they complete goes to `line`.
    pub(crate) fn push(&mut self, bytes: &[u8], mut line: impl FnMut(String)) {
        for &b in bytes {
            if b == b'\n' || (self.also_cr && b == b'\r') {
                line(self.take());
            } else if self.current.len() < MAX_LINE {
                self.current.push(b);
            } else {
                self.cut = true;
            }
        }
    }

    /// The unterminated last line, if there is one.
    pub(crate) fn finish(mut self) -> Option<String> {
        (!self.current.is_empty() || self.cut).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let bytes = std::mem::take(&mut self.current);
        let cut = std::mem::take(&mut self.cut);
        line_text(&bytes, cut)
    }
}

/// A line's text: lossy UTF-8 without a trailing `\r`; a cut line loses a
/// character split by the cut and ends with [`CUT_MARK`].
fn line_text(bytes: &[u8], cut: bool) -> String {
    let mut bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if cut {
        if let Err(e) = std::str::from_utf8(bytes) {
            if e.error_len().is_none() {
                bytes = &bytes[..e.valid_up_to()];
            }
        }
    }
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if cut {
        text.push_str(CUT_MARK);
    }
    text
}

/// The last lines of a call's error output, what an error keeps of it: at most
/// [`STDERR_TAIL_LINES`], a line printed again moved to the end rather than kept
/// twice (a progress bar redraws the same line many times).
#[derive(Default)]
pub(crate) struct Tail(VecDeque<String>);

impl Tail {
    pub(crate) fn push(&mut self, line: &str) {
        if let Some(at) = self.0.iter().position(|l| l == line) {
            self.0.remove(at);
        } else if self.0.len() == STDERR_TAIL_LINES {
            self.0.pop_front();
        }
        self.0.push_back(line.to_string());
    }

    pub(crate) fn text(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Removes terminal control sequences from a line: CSI sequences (colours, cursor
/// moves, erase), OSC strings (titles), two-byte escapes, and other control
/// characters but tabs. A progress bar drawn on a terminal is full of them.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            if !c.is_control() || c == '\t' {
                out.push(c);
            }
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or the string terminator, ESC and a backslash.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // A charset choice (ESC ( B) has one more byte; others (ESC 7) are done.
            Some('(' | ')') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2K\u{1b}[1Acopying 1.0GiB / 2.0GiB"),
            "copying 1.0GiB / 2.0GiB"
        );
        // Seen from podman 4.3.1 on a pty: cursor up, erase to the end.
        assert_eq!(
            strip_ansi("\u{1b}[3A\u{1b}[JCopying blob ddf365a09872 skipped: already exists  "),
            "Copying blob ddf365a09872 skipped: already exists  "
        );
        assert_eq!(
            strip_ansi(
                "\u{1b}[?25l\u{1b}[31mWARN\u{1b}[0m[0000] x\u{1b}]0;title\u{7}!\u{1b}(B\u{1b}7."
            ),
            "WARN[0000] x!.",
            "private modes, colours, a title, a charset, save cursor"
        );
        assert_eq!(strip_ansi("tab\there\u{8}"), "tab\there");
    }

    #[test]
    fn a_tail_keeps_the_last_distinct_lines() {
        let mut tail = Tail::default();
        for line in ["a", "bar 1", "bar 1", "b", "bar 1"] {
            tail.push(line);
        }
        assert_eq!(
            tail.text(),
            "a\nb\nbar 1",
            "a repeated line moves to the end"
        );
        for i in 0..30 {
            tail.push(&format!("line {i}"));
        }
        assert_eq!(tail.text().lines().count(), STDERR_TAIL_LINES);
        assert!(tail.text().ends_with("line 29"));
    }
}
