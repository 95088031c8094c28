//! `cargo run --example tray_host`: a stand-in tray host on the session bus
//! (`DBUS_SESSION_BUS_ADDRESS`) for the tray benchmark's headless session
//! (`bench/b8_tray.py`). Prints `ready` once it owns the watcher's name, then
//! serves until killed. Linux only: elsewhere the tray is no D-Bus service.

#[cfg(target_os = "linux")]
mod watcher;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    let Ok(address) = std::env::var("DBUS_SESSION_BUS_ADDRESS") else {
        eprintln!("tray_host: DBUS_SESSION_BUS_ADDRESS is not set");
        return std::process::ExitCode::FAILURE;
    };
    match watcher::serve(&address) {
        Ok(_connection) => {
            println!("ready");
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("tray_host: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("tray_host: Linux only");
}
