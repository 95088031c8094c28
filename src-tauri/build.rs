fn main() {
    // Tauri's build step (context, resources, Windows manifest) is for the window:
    // the command line, `serve` and the tray app build without it (on Windows its
    // resources still go into every program of the package).
    #[cfg(feature = "window")]
    tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
        .expect("tauri build script failed");
}
