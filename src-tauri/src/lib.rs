//! What the two binaries share, none of it touching the GUI: the command line
//! (`cli`), the headless server (`serve`), opening a dashboard in the browser,
//! printing that cannot panic, logging, the process's exit, and resume from sleep.

pub mod browser;
pub mod cli;
pub mod console;
pub mod exit;
pub mod logging;
pub mod serve;
pub mod wake;
