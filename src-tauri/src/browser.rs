//! Opening an agent's dashboard in the default browser, the one way the tray's
//! "Open dashboard", the window's Dashboard button and `clawdock agents open` all
//! take: the opener (`xdg-open`, `open`, the browser; every local user reads its
//! command line) is handed the path of a private page that sends the browser on
//! to a one-time address (see `clawdock_core::dashboard`), never an address that
//! signs in.

use std::path::Path;

/// Why the dashboard did not open.
#[derive(Debug)]
pub enum OpenError {
    /// The page could not be written in the data folder.
    Page(std::io::Error),
    /// No browser could be started for it.
    Browser(std::io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Page(e) => write!(f, "could not write the page that opens the dashboard ({e})"),
            Self::Browser(e) => write!(f, "could not open a browser ({e})"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Page(e) | Self::Browser(e) => Some(e),
        }
    }
}

/// Opens the dashboard that the one-time address `link` (on this instance's API)
/// leads to, through a page written in the data folder `home`.
pub fn open_dashboard(home: &Path, link: &str) -> Result<(), OpenError> {
    let page = clawdock_core::dashboard::write_opener_page(home, link).map_err(OpenError::Page)?;
    open::that_detached(&page).map_err(OpenError::Browser)
}
