//! Opening an agent's dashboard without a secret on any command line. The opener
//! (`xdg-open`, `open`, the browser) is run with an argument every local user reads
//! in `/proc/*/cmdline`, and whoever fetched an address from there first was signed
//! in. So the opener gets only the path of a page in a private folder (0600 in a
//! 0700 folder of the data folder, as Jupyter does), which sends the browser to a
//! one-time address on Clawdock's own API, `http://127.0.0.1:<api>/dashboard/<ticket>`,
//! good for one visit within [`TICKET_TTL`]; the API answers that visit with a
//! redirect to the dashboard, the gateway token in the fragment.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use uuid::Uuid;

/// How long a one-time address stays good.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Where one-time addresses live on the API.
pub const ROUTE_PREFIX: &str = "/dashboard/";

/// The most addresses open at once; the oldest goes first beyond it.
const MAX_OPEN: usize = 64;

/// The one-time addresses given out and not yet used. Time is passed in, so
/// expiry is tested without waiting.
#[derive(Debug, Default)]
pub struct Tickets {
    open: HashMap<String, (Uuid, Instant)>,
}

impl Tickets {
    /// A new address for `agent`'s dashboard: 256 random bits, hex.
    pub fn issue(&mut self, agent: Uuid, now: Instant) -> String {
        self.open.retain(|_, (_, until)| *until > now);
        while self.open.len() >= MAX_OPEN {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => self.open.remove(&t),
                None => break,
            };
        }
        let ticket = crate::agents::random_hex(32);
        self.open.insert(ticket.clone(), (agent, now + TICKET_TTL));
        ticket
    }

    /// The agent whose dashboard `ticket` opens, once: the ticket is gone after
    /// this, used or expired.
    pub fn redeem(&mut self, ticket: &str, now: Instant) -> Option<Uuid> {
        let (agent, until) = self.open.remove(ticket)?;
        (now < until).then_some(agent)
    }
}

/// The folder of the data folder that holds the pages the opener is given.
pub const PAGES_DIR: &str = "open";

/// Writes a page that sends the browser to the one-time address `link`, and gives
/// back its path, which is all the opener's command line holds. The page is 0600
/// in a 0700 folder: another user can read neither (nor list the folder). Pages
/// older than twice [`TICKET_TTL`] are removed first (their address is used or
/// expired by then). Only an `http://` address of plain characters is written:
/// what goes into the page is never markup or script.
pub fn write_opener_page(home: &Path, link: &str) -> io::Result<PathBuf> {
    let plain = |c: char| c.is_ascii_alphanumeric() || ":/.-_[]".contains(c);
    if !link.starts_with("http://") || !link.chars().all(plain) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a one-time dashboard address: {link:?}"),
        ));
    }
    let folder = home.join(PAGES_DIR);
    crate::store::create_private_dir(&folder)?;
    remove_old_pages(&folder, SystemTime::now());
    let page = folder.join(format!("dashboard-{}.html", crate::agents::random_hex(16)));
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta http-equiv=\"refresh\" content=\"0;url={link}\">\n\
         <title>Opening the dashboard</title></head>\n\
         <body><p>Opening the agent's dashboard. If nothing happens, \
         <a href=\"{link}\">open it</a> (within {secs} s).</p>\n\
         <script>location.replace(\"{link}\")</script></body></html>\n",
        secs = TICKET_TTL.as_secs()
    );
    crate::store::write_secret(&page, html.as_bytes()).map_err(|e| match e {
        crate::store::StoreError::Write { source, .. }
        | crate::store::StoreError::Read { source, .. } => source,
    })?;
    Ok(page)
}

/// Removes the pages of `folder` last changed before `now - 2 × TICKET_TTL`.
fn remove_old_pages(folder: &Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .is_some_and(|n| n.starts_with("dashboard-") && n.ends_with(".html"));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).is_ok_and(|age| age > 2 * TICKET_TTL));
        if ours && old {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::debug!(page = %entry.path().display(), error = %e, "could not remove an old dashboard page");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_once_and_not_after_thirty_seconds() {
        let mut tickets = Tickets::default();
        let agent = Uuid::new_v4();
        let t0 = Instant::now();
        let once = tickets.issue(agent, t0);
        assert_eq!(once.len(), 64);
        assert_eq!(
            tickets.redeem(&once, t0 + Duration::from_secs(29)),
            Some(agent)
        );
        assert_eq!(
            tickets.redeem(&once, t0 + Duration::from_secs(29)),
            None,
            "used"
        );

        let late = tickets.issue(agent, t0);
        assert_ne!(late, once);
        assert_eq!(tickets.redeem(&late, t0 + TICKET_TTL), None, "expired");
        assert_eq!(tickets.redeem(&late, t0), None, "and gone");
        assert_eq!(tickets.redeem("nope", t0), None);

        for _ in 0..(MAX_OPEN * 2) {
            tickets.issue(agent, t0);
        }
        assert!(tickets.open.len() <= MAX_OPEN);
        let kept = tickets.issue(agent, t0 + Duration::from_secs(1));
        assert_eq!(
            tickets.redeem(&kept, t0 + Duration::from_secs(2)),
            Some(agent)
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_page_is_private_and_holds_only_the_one_time_address() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().expect("tmp");
        let link = "http://127.0.0.1:9105/dashboard/0123abcd";
        let page = write_opener_page(home.path(), link).expect("page");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&page), 0o600);
        assert_eq!(mode(&home.path().join(PAGES_DIR)), 0o700);
        let html = std::fs::read_to_string(&page).expect("page");
        assert!(
            html.contains(&format!("location.replace(\"{link}\")")),
            "{html}"
        );
        for bad in [
            "javascript:alert(1)",
            "http://127.0.0.1:1/\"><script>",
            "http://x/</script>",
        ] {
            assert!(write_opener_page(home.path(), bad).is_err(), "{bad}");
        }
        let later = SystemTime::now() + 3 * TICKET_TTL;
        remove_old_pages(&home.path().join(PAGES_DIR), later);
        assert!(!page.exists(), "an old page goes");
    }
}
