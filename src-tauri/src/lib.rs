//! What the programs share, none of it touching the GUI: the command line
//! (`cli`), the headless server (`serve`), opening a dashboard in the browser
//! (`browser`), printing that cannot panic, logging, the process's exit, resume
//! from sleep, and what the tray app and its window process say to each other
//! (`window_link`).

pub mod browser;
pub mod cli;
pub mod console;
pub mod exit;
pub mod logging;
pub mod serve;
pub mod wake;
pub mod window_link;
