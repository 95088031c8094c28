//! One-time addresses on Clawdock's own API that open an agent's dashboard, so the
//! gateway token (which never changes, and opens a port every local user can
//! reach) is never on a command line: the opener (`xdg-open`, `open`, the browser,
//! all readable in `/proc/*/cmdline`) gets `http://127.0.0.1:<api>/dashboard/<ticket>`,
//! good for one visit within [`TICKET_TTL`]; the API answers that visit with a
//! redirect to the dashboard, the token in the fragment.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
}
