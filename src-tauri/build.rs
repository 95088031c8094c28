fn main() {
    // Tauri's build step (context, resources, Windows manifest) is the app's alone:
    // the command line and `serve` build without it.
    #[cfg(feature = "app")]
    tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
        .expect("tauri build script failed");
}
