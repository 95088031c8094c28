//! Clawdock's transport to Podman, apart from what it says: where the engine's API
//! socket is and the service behind it (`socket`), HTTP over it (`client`), the
//! `podman` command for what has no API (`runner`, and `terminal` for the call whose
//! progress Podman draws only on a terminal), lines of output (`lines`), the typed
//! errors that keep the cause (`errors`) and what a person can do about one
//! (`advice`).

pub mod advice;
pub mod client;
pub mod errors;
pub mod lines;
pub mod runner;
pub mod socket;
mod terminal;

pub use errors::{ExitCode, Output, PodmanError};
pub use lines::{strip_ansi, LineSink, LineStream, Stream, CUT_MARK, MAX_LINE};
pub use runner::{install_hint, locate, Call, Installation, Podman, MAX_STDOUT};
