//! Random tokens and this data folder's instance label, which marks its
//! containers apart from another instance's on the same engine.

use crate::settings::Settings;
use crate::store::{self, StoreError};

/// Hex of `bytes` random bytes from the OS.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Err(e) = getrandom::fill(&mut buf) {
        // No OS randomness is not something to limp on with a weak token.
        panic!("the operating system gave no random bytes: {e}");
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// This data folder's instance label, created once and kept in the folder.
pub(super) fn instance_label(settings: &Settings) -> Result<String, StoreError> {
    let path = settings.home.join("instance-id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(id.to_string());
        }
    }
    let id = random_hex(8);
    store::write_plain(&path, id.as_bytes())?;
    Ok(id)
}
