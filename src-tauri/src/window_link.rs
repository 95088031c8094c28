//! What the tray app and its window process say to each other: one JSON object a
//! line, the tray writing to the window's stdin and the window to its stdout. The
//! window lives only while it is open, so the tray, which runs all day, never loads
//! the web view; the pipe is also how the window learns the tray is gone (its stdin
//! ends). Requests a later window will serve (an update, say) are new variants here.

use serde::{Deserialize, Serialize};

/// From the tray to the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToWindow {
    /// The first line: the API's address and token (on a pipe, since every local
    /// user can read a command line), the UI's route to open at, and the folder the
    /// window logs to (the tray app's).
    Open {
        url: String,
        token: String,
        route: String,
        log_dir: std::path::PathBuf,
    },
    /// Show the window, in front, at a route of the UI; `""` leaves the page where
    /// it is.
    Show { route: String },
}

/// From the window to the tray.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FromWindow {
    /// The window gained or lost the focus: while it has it, the user sees what
    /// happens there and the tray's notifications would repeat it.
    Focused { focused: bool },
    /// The user quit from the window's own app menu (macOS: Cmd+Q, Dock > Quit):
    /// the whole app quits, as from the tray.
    Quit,
    /// The page asked for an agent's dashboard (its one-time address on the API):
    /// the tray opens it as its own "Open dashboard" does, through a private page
    /// in the data folder, which the window process does not know.
    OpenDashboard { link: String },
}

/// One message as the line that carries it, newline included.
pub fn line(message: &impl Serialize) -> String {
    // Serialising these enums of strings and bools cannot fail.
    let mut text = serde_json::to_string(message).unwrap_or_default();
    text.push('\n');
    text
}

/// The message a line carries.
pub fn read<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(line.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_travel_as_one_line_each() {
        let open = ToWindow::Open {
            url: "http://127.0.0.1:9105".into(),
            token: "t0k".into(),
            route: "setup".into(),
            log_dir: "/tmp/logs".into(),
        };
        let text = line(&open);
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with('\n'));
        assert_eq!(read::<ToWindow>(&text).expect("read"), open);
        for message in [
            FromWindow::Focused { focused: true },
            FromWindow::Quit,
            FromWindow::OpenDashboard {
                link: "http://127.0.0.1:9105/dashboard/ab".into(),
            },
        ] {
            assert_eq!(read::<FromWindow>(&line(&message)).expect("read"), message);
        }
        assert!(read::<FromWindow>("{\"type\":\"nonsense\"}").is_err());
    }
}
