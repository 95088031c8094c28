//! Byte progress of a Podman copy (a pull, the image of `machine init`): counters
//! summed over the blobs of one copy, an ETA, and how often listeners hear of it.
//! Counters come from the engine's API as numbers ([`PullReport`]) or from the
//! lines the podman command prints. Pure but for [`Paced`], which feeds a [`Meter`]
//! the clock.
//!
//! On a terminal Podman redraws one bar per blob many times a second, all of them
//! at once ("Copying blob 4f2e1f5a9d3c [==>---] 512.0MiB / 1.1GiB | 48.3 MiB/s");
//! on a pipe it prints one plain line per blob ("Copying blob sha256:4f2e...").

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::LineSink;

/// How often a listener hears of moving counters: at most five times a second. Lines
/// that say something new (a blob seen, a blob done, a phase) always go through.
pub const EVENTS_EVERY: Duration = Duration::from_millis(200);

/// How long the rate must be watched before an ETA is given: one second of a
/// download says little, none says nothing.
const ETA_AFTER: Duration = Duration::from_secs(1);

/// Reads "512.0MiB / 2.1GiB" style counters from a progress line (the number and
/// the unit may stand apart: "12.5 MiB / 45.0 MiB"). Clients get the numbers; they
/// do not parse podman's lines themselves.
pub fn parse_counters(line: &str) -> Option<(u64, u64)> {
    counters(line).map(|c| (c.done, c.total))
}

/// Counters found in a line, and where they begin (what comes before is the label).
struct Counters {
    at: usize,
    done: u64,
    total: u64,
}

fn counters(line: &str) -> Option<Counters> {
    // The last " / ": a speed ("48.3 MiB/s") or a partial pull's "(skipped: ...)"
    // after the counters holds none.
    let slash = line.rfind(" / ")?;
    let head = line[..slash].trim_end();
    let last = word_start(head);
    let (done, at) = match parse_size(&head[last..]) {
        Some(done) => (done, last),
        None => {
            let rest = head[..last].trim_end();
            let number = word_start(rest);
            (
                parse_size(&format!("{}{}", &rest[number..], &head[last..]))?,
                number,
            )
        }
    };
    let after: Vec<&str> = line[slash + 3..].split_whitespace().collect();
    let total = after
        .first()
        .and_then(|w| parse_size(w))
        .or_else(|| parse_size(&after.get(..2)?.concat()))?;
    (total > 0 && done <= total).then_some(Counters { at, done, total })
}

/// Where the last whitespace-separated word of `text` begins.
fn word_start(text: &str) -> usize {
    text.char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8())
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim_matches(|c: char| c == '(' || c == ')' || c == ',');
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.trim().parse().ok()?;
    let scale: f64 = match unit {
        "B" | "b" => 1.0,
        "KiB" | "kiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some((value * scale) as u64)
}

/// What is known of one thing being copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    /// A bar with its counters.
    Counting { done: u64, total: u64 },
    /// "done", or "skipped: already exists".
    Finished,
    /// Named without counters: a plain "Copying blob sha256:..." or a spinner.
    Named,
}

/// A line about one thing being copied: which kind of copy (a new kind starts a new
/// tally), which thing, and its state.
#[derive(Debug, PartialEq)]
struct Item<'a> {
    phase: &'a str,
    key: String,
    state: CopyState,
}

/// The phase of every blob and config of an image copy.
const COPYING: &str = "Copying";

/// Reads a line about a thing being copied; `None` for other lines.
fn item(line: &str) -> Option<Item<'_>> {
    let line = line.trim().trim_end_matches(['|', ' ']);
    let counted = counters(line);
    if let Some(rest) = line.strip_prefix("Copying ") {
        // "Copying blob 4f2e1f5a9d3c ..." on a terminal, "Copying blob sha256:4f2e..."
        // on a pipe: one key for both, the first 12 digits of the digest.
        let mut words = rest.split_whitespace();
        let kind = words.next()?;
        let digest = words.next()?;
        let digest = digest.strip_prefix("sha256:").unwrap_or(digest);
        let short: String = digest.chars().take(12).collect();
        let tail: Vec<&str> = words.collect();
        let state = match counted {
            Some(c) => CopyState::Counting {
                done: c.done,
                total: c.total,
            },
            None if tail.first() == Some(&"done") || tail.first() == Some(&"skipped:") => {
                CopyState::Finished
            }
            None => CopyState::Named,
        };
        return Some(Item {
            phase: COPYING,
            key: format!("{kind} {short}"),
            state,
        });
    }
    // Other bars ("Extracting compressed file: x.raw [==>--] 1.0GiB / 2.1GiB", then
    // "Extracting compressed file: x.raw: done") are their own phase, keyed by
    // their label.
    let (label, state) = match counted {
        Some(c) => (
            &line[..c.at],
            CopyState::Counting {
                done: c.done,
                total: c.total,
            },
        ),
        None => (line.strip_suffix("done")?, CopyState::Finished),
    };
    let label = label.trim_end();
    let label = match label.strip_suffix(']').and_then(|l| l.rfind('[')) {
        Some(bar) => &label[..bar],
        None => label,
    };
    let label = label.trim_end_matches([' ', ':', '(']);
    (!label.is_empty()).then_some(Item {
        phase: label,
        key: label.to_string(),
        state,
    })
}

/// What a pull says as it goes, as the engine's API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullReport {
    /// A line of text, where the engine gives no numbers.
    Line(String),
    /// One blob, by the first 12 digits of its digest, and the line that says so.
    Blob {
        id: String,
        state: CopyState,
        line: String,
    },
}

impl PullReport {
    /// A blob's report, with the line Podman itself prints for it ("Copying blob
    /// 4f2e1f5a9d3c 12.0MiB / 24.0MiB"). `skipped`: already on this machine.
    pub fn blob(id: &str, state: CopyState, skipped: bool) -> Self {
        let line = match state {
            CopyState::Counting { done, total } => {
                format!(
                    "Copying blob {id} {} / {}",
                    size_text(done),
                    size_text(total)
                )
            }
            CopyState::Finished if skipped => format!("Copying blob {id} skipped: already exists"),
            CopyState::Finished => format!("Copying blob {id} done"),
            CopyState::Named => format!("Copying blob {id}"),
        };
        Self::Blob {
            id: id.to_string(),
            state,
            line,
        }
    }
}

/// Bytes the way Podman prints them: binary units, one decimal.
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// What a line changed in a [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Something to tell: a thing first seen, a thing finished, or a line that is
    /// not a bar at all ("Writing manifest to image destination").
    News,
    /// Only the counters moved.
    Moved,
    /// A redraw of what was already known.
    Again,
}

/// The byte counters of one copy, summed over its blobs: Podman draws one bar per
/// blob, several at once, so one bar's counters alone would jump between blobs.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    phase: Option<String>,
    items: Vec<Counted>,
}

#[derive(Debug, Clone)]
struct Counted {
    key: String,
    done: u64,
    /// Unknown until a bar showed it (a pipe, a skipped blob).
    total: Option<u64>,
    finished: bool,
}

impl Tally {
    /// Takes one line (terminal codes already removed).
    pub fn feed(&mut self, line: &str) -> Seen {
        match item(line) {
            Some(item) => self.take(item),
            None => Seen::News,
        }
    }

    /// Takes one blob's state, as numbers.
    pub fn feed_blob(&mut self, id: &str, state: CopyState) -> Seen {
        self.take(Item {
            phase: COPYING,
            key: format!("blob {id}"),
            state,
        })
    }

    fn take(&mut self, item: Item<'_>) -> Seen {
        if self.phase.as_deref() != Some(item.phase) {
            self.phase = Some(item.phase.to_string());
            self.items.clear();
        }
        let index = match self.items.iter().position(|c| c.key == item.key) {
            Some(index) => index,
            None => {
                self.items.push(Counted {
                    key: item.key,
                    done: 0,
                    total: None,
                    finished: false,
                });
                let counted = self.items.len() - 1;
                self.update(counted, &item.state);
                return Seen::News;
            }
        };
        self.update(index, &item.state)
    }

    fn update(&mut self, index: usize, state: &CopyState) -> Seen {
        let counted = &mut self.items[index];
        match *state {
            CopyState::Counting { done, total } => {
                if counted.done == done && counted.total == Some(total) {
                    return Seen::Again;
                }
                counted.done = done;
                counted.total = Some(total);
                Seen::Moved
            }
            CopyState::Finished => {
                if let Some(total) = counted.total {
                    counted.done = total;
                }
                if counted.finished {
                    Seen::Again
                } else {
                    counted.finished = true;
                    Seen::News
                }
            }
            CopyState::Named => Seen::Again,
        }
    }

    /// Bytes done and in all, over the things whose size a bar showed; `None` until
    /// one did.
    pub fn counters(&self) -> Option<(u64, u64)> {
        let sized = self
            .items
            .iter()
            .filter_map(|c| c.total.map(|total| (c.done.min(total), total)));
        let (done, total) = sized.fold((0, 0), |(d, t), (dd, tt)| (d + dd, t + tt));
        (total > 0).then_some((done, total))
    }

    /// The kind of copy counted now ("Copying", or an extraction's label).
    pub fn phase(&self) -> Option<&str> {
        self.phase.as_deref()
    }
}

/// What a listener is told of one copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The line that caused it.
    pub line: String,
    /// Whether the line says something new (worth a log line), rather than only
    /// moving counters.
    pub news: bool,
    pub done_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// Seconds left at the rate seen since the phase's first counters.
    pub eta_secs: Option<u64>,
}

/// A [`Tally`] with a pace: news always, moving counters at most once per
/// `every`, the last held-back state on [`Meter::flush`], and an ETA.
#[derive(Debug, Clone)]
pub struct Meter {
    tally: Tally,
    every: Duration,
    last_told: Option<Instant>,
    /// A line whose counters moved but that was not told yet.
    held: Option<String>,
    /// When the phase's counters were first seen, and the bytes done then.
    rate_from: Option<(Instant, u64)>,
    phase: Option<String>,
}

impl Meter {
    pub fn new(every: Duration) -> Self {
        Self {
            tally: Tally::default(),
            every,
            last_told: None,
            held: None,
            rate_from: None,
            phase: None,
        }
    }

    /// Takes one line read at `now`; returns what to tell now, if anything.
    pub fn feed(&mut self, line: &str, now: Instant) -> Option<Reading> {
        let seen = self.tally.feed(line);
        self.after(seen, line, now)
    }

    /// Takes one report of a pull read at `now`; returns what to tell now, if
    /// anything.
    pub fn feed_report(&mut self, report: &PullReport, now: Instant) -> Option<Reading> {
        match report {
            PullReport::Line(line) => self.feed(line, now),
            PullReport::Blob { id, state, line } => {
                let seen = self.tally.feed_blob(id, *state);
                self.after(seen, line, now)
            }
        }
    }

    fn after(&mut self, seen: Seen, line: &str, now: Instant) -> Option<Reading> {
        if self.tally.phase() != self.phase.as_deref() {
            self.phase = self.tally.phase().map(str::to_string);
            self.rate_from = None;
        }
        if self.rate_from.is_none() {
            self.rate_from = self.tally.counters().map(|(done, _)| (now, done));
        }
        match seen {
            Seen::News => Some(self.reading(line, true, now)),
            Seen::Moved if self.last_told.is_none_or(|t| now >= t + self.every) => {
                Some(self.reading(line, false, now))
            }
            Seen::Moved => {
                self.held = Some(line.to_string());
                None
            }
            Seen::Again => None,
        }
    }

    /// The counters held back by the pace, once the copy ended: the last state
    /// always reaches the listener.
    pub fn flush(&mut self, now: Instant) -> Option<Reading> {
        let line = self.held.take()?;
        Some(self.reading(&line, false, now))
    }

    fn reading(&mut self, line: &str, news: bool, now: Instant) -> Reading {
        self.last_told = Some(now);
        self.held = None;
        let counters = self.tally.counters();
        Reading {
            line: line.to_string(),
            news,
            done_bytes: counters.map(|(done, _)| done),
            total_bytes: counters.map(|(_, total)| total),
            eta_secs: counters.and_then(|(done, total)| self.eta(done, total, now)),
        }
    }

    fn eta(&self, done: u64, total: u64, now: Instant) -> Option<u64> {
        let (since, done_then) = self.rate_from?;
        let watched = now.checked_duration_since(since)?;
        if watched < ETA_AFTER || done <= done_then {
            return None;
        }
        let rate = (done - done_then) as f64 / watched.as_secs_f64();
        Some(((total - done) as f64 / rate).ceil() as u64)
    }
}

/// A podman call's progress as its listener hears it: each line read into a
/// [`Meter`] at the pace of [`EVENTS_EVERY`], each reading handed to `tell`. What
/// image pulls and `machine init` share.
pub struct Paced {
    meter: Mutex<Meter>,
    tell: Box<dyn Fn(Reading) + Send + Sync>,
}

impl Paced {
    pub fn new(tell: impl Fn(Reading) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            meter: Mutex::new(Meter::new(EVENTS_EVERY)),
            tell: Box::new(tell),
        })
    }

    /// The line sink to give a podman call.
    pub fn sink(self: &Arc<Self>) -> LineSink {
        let this = self.clone();
        Arc::new(move |_, line: &str| {
            let reading = this.meter().feed(line, Instant::now());
            if let Some(reading) = reading {
                (this.tell)(reading);
            }
        })
    }

    /// Takes one report of a pull from the engine's API.
    pub fn report(&self, report: &PullReport) {
        let reading = self.meter().feed_report(report, Instant::now());
        if let Some(reading) = reading {
            (self.tell)(reading);
        }
    }

    /// Once the call ended: tells the last counters the pace held back.
    pub fn finish(&self) {
        let reading = self.meter().flush(Instant::now());
        if let Some(reading) = reading {
            (self.tell)(reading);
        }
    }

    fn meter(&self) -> std::sync::MutexGuard<'_, Meter> {
        self.meter.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn counters() {
        assert_eq!(
            parse_counters("Copying blob 4f2e [===>   ] 512.0MiB / 2.0GiB | 48.3 MiB/s"),
            Some((512 * MIB, 2 * GIB))
        );
        assert_eq!(
            parse_counters("Extracting compressed file: x.qcow2: 1.00GiB / 2.00GiB"),
            Some((GIB, 2 * GIB))
        );
        assert_eq!(
            parse_counters("Copying blob sha256:aa 12.5 MiB / 45.0 MiB"),
            Some(((12.5 * 1048576.0) as u64, 45 * MIB)),
            "number and unit apart"
        );
        assert_eq!(
            parse_counters("Copying config 1.2kB / 1.2kB"),
            Some((1200, 1200))
        );
        assert_eq!(
            parse_counters("x (3.0MB / 10.0MB)"),
            Some((3_000_000, 10_000_000))
        );
        assert_eq!(parse_counters("Copying blob sha256:8a4c done"), None);
        assert_eq!(
            parse_counters("Trying to pull ghcr.io/openclaw/openclaw:latest..."),
            None
        );
        assert_eq!(parse_counters("a / b"), None);
        assert_eq!(parse_counters("5MiB / 0B"), None, "no total");
        assert_eq!(parse_counters("9MiB / 5MiB"), None, "done past total");
    }

    #[test]
    fn counters_of_real_podman_bars() {
        // Podman 4.3.1 on a pty (measured): bytes as "b", no speed.
        assert_eq!(
            parse_counters(
                "Copying config 99b6d4980d [======================================] 744.0b / 744.0b"
            ),
            Some((744, 744))
        );
        assert_eq!(
            parse_counters(
                "Copying blob c25e2bd88fc9 [===========================>----------] 21.0MiB / 28.6MiB"
            ),
            Some((21 * MIB, (28.6 * MIB as f64) as u64))
        );
        // containers/image today: a speed after the counters.
        assert_eq!(
            parse_counters(
                "Copying blob 4f2e1f5a9d3c [===>-----------] 512.0MiB / 1.1GiB | 48.3 MiB/s"
            ),
            Some((512 * MIB, (1.1 * GIB as f64) as u64))
        );
        // A partial (zstd:chunked) pull.
        assert_eq!(
            parse_counters(
                "Copying blob 4f2e1f5a9d3c [=>--] 12.0MiB / 45.0MiB (skipped: 3.0MiB = 6.67%)"
            ),
            Some((12 * MIB, 45 * MIB))
        );
        // An ETA after the speed, and mpb's spaced form.
        assert_eq!(
            parse_counters("Copying blob 4f2e [==>--] 1.0 GiB / 2.0 GiB | 50.0 MiB/s | ETA 20s"),
            Some((GIB, 2 * GIB))
        );
        assert_eq!(parse_counters("Copying blob 4f2e1f5a9d3c done   |"), None);
        assert_eq!(
            parse_counters("Copying blob ddf365a09872 skipped: already exists"),
            None
        );
        assert_eq!(parse_counters("Copying blob ddf365a09872 ."), None);
    }

    #[test]
    fn lines_name_the_thing_they_are_about() {
        let blob = |line| item(line).map(|i| (i.phase, i.key, i.state));
        let key = || "blob 4f2e1f5a9d3c".to_string();
        assert_eq!(
            blob("Copying blob 4f2e1f5a9d3c [=>--] 1.0MiB / 2.0MiB | 5.0 MiB/s"),
            Some((
                COPYING,
                key(),
                CopyState::Counting {
                    done: MIB,
                    total: 2 * MIB
                }
            ))
        );
        assert_eq!(
            blob("Copying blob 4f2e1f5a9d3c done   |"),
            Some((COPYING, key(), CopyState::Finished))
        );
        assert_eq!(
            blob("Copying blob sha256:4f2e1f5a9d3c0011aabb"),
            Some((COPYING, key(), CopyState::Named)),
            "the plain line has the same key as the bar"
        );
        assert_eq!(
            blob("Copying blob 4f2e1f5a9d3c skipped: already exists"),
            Some((COPYING, key(), CopyState::Finished))
        );
        assert_eq!(
            blob("Copying config 2f3b4c5d6e7f done"),
            Some((COPYING, "config 2f3b4c5d6e7f".into(), CopyState::Finished))
        );
        let x = "Extracting compressed file: x.raw";
        assert_eq!(
            blob("Extracting compressed file: x.raw [==>---] 1.0GiB / 2.0GiB"),
            Some((
                x,
                x.into(),
                CopyState::Counting {
                    done: GIB,
                    total: 2 * GIB
                }
            ))
        );
        assert_eq!(
            blob("Extracting compressed file: x.raw: 1.00GiB / 2.00GiB"),
            Some((
                x,
                x.into(),
                CopyState::Counting {
                    done: GIB,
                    total: 2 * GIB
                }
            ))
        );
        assert_eq!(
            blob("Extracting compressed file: x.raw: done"),
            Some((x, x.into(), CopyState::Finished))
        );
        assert_eq!(blob("Writing manifest to image destination"), None);
        assert_eq!(blob("done"), None);
    }

    #[test]
    fn blob_reports_from_the_api_sum_to_the_byte_and_say_what_podman_says() {
        let mut meter = Meter::new(Duration::ZERO);
        let now = Instant::now();
        let report = |id: &str, state, skipped| PullReport::blob(id, state, skipped);
        let skipped = report("aaaaaaaaaaaa", CopyState::Finished, true);
        let told = meter.feed_report(&skipped, now).expect("news");
        assert_eq!(
            told.line,
            "Copying blob aaaaaaaaaaaa skipped: already exists"
        );
        assert_eq!(told.total_bytes, None, "a skipped blob has no size");
        let counting = |done| CopyState::Counting {
            done,
            total: 3 * MIB + 1,
        };
        meter.feed_report(&report("bbbbbbbbbbbb", CopyState::Named, false), now);
        let told = meter
            .feed_report(&report("bbbbbbbbbbbb", counting(MIB), false), now)
            .expect("moved");
        assert_eq!(told.line, "Copying blob bbbbbbbbbbbb 1.0MiB / 3.0MiB");
        meter.feed_report(&report("cccccccccccc", counting(2 * MIB), false), now);
        let told = meter
            .feed_report(&report("bbbbbbbbbbbb", CopyState::Finished, false), now)
            .expect("news");
        assert_eq!(told.line, "Copying blob bbbbbbbbbbbb done");
        assert_eq!(
            (told.done_bytes, told.total_bytes),
            (Some(5 * MIB + 1), Some(6 * MIB + 2)),
            "exact bytes, a done blob counted whole"
        );
        assert_eq!(size_text(512), "512B");
        assert_eq!(size_text(3 * GIB / 2), "1.5GiB");
    }

    #[test]
    fn a_tally_sums_every_blob_seen_so_far() {
        let mut t = Tally::default();
        assert_eq!(t.feed("Getting image source signatures"), Seen::News);
        assert_eq!(t.counters(), None);
        assert_eq!(
            t.feed("Copying blob aaaaaaaaaaaa skipped: already exists"),
            Seen::News
        );
        assert_eq!(t.counters(), None, "a skipped blob has no size");
        assert_eq!(
            t.feed("Copying blob bbbbbbbbbbbb [=>--] 10.0MiB / 40.0MiB"),
            Seen::News
        );
        assert_eq!(t.counters(), Some((10 * MIB, 40 * MIB)));
        assert_eq!(
            t.feed("Copying blob cccccccccccc [>---] 1.0MiB / 20.0MiB"),
            Seen::News
        );
        assert_eq!(t.counters(), Some((11 * MIB, 60 * MIB)), "two bars summed");
        // The next frame redraws every bar.
        assert_eq!(
            t.feed("Copying blob aaaaaaaaaaaa skipped: already exists"),
            Seen::Again
        );
        assert_eq!(
            t.feed("Copying blob bbbbbbbbbbbb [==>-] 30.0MiB / 40.0MiB"),
            Seen::Moved
        );
        assert_eq!(
            t.feed("Copying blob cccccccccccc [>---] 1.0MiB / 20.0MiB"),
            Seen::Again
        );
        assert_eq!(t.counters(), Some((31 * MIB, 60 * MIB)));
        assert_eq!(t.feed("Copying blob bbbbbbbbbbbb done   |"), Seen::News);
        assert_eq!(t.feed("Copying blob bbbbbbbbbbbb done   |"), Seen::Again);
        assert_eq!(
            t.counters(),
            Some((41 * MIB, 60 * MIB)),
            "done is all of it"
        );
        assert_eq!(t.feed("Writing manifest to image destination"), Seen::News);
        assert_eq!(
            t.counters(),
            Some((41 * MIB, 60 * MIB)),
            "text keeps the sums"
        );
    }

    #[test]
    fn a_new_kind_of_bar_starts_a_new_tally() {
        let mut t = Tally::default();
        t.feed("Copying blob bbbbbbbbbbbb [====] 2.0GiB / 2.0GiB");
        assert_eq!(t.counters(), Some((2 * GIB, 2 * GIB)));
        assert_eq!(
            t.feed("Extracting compressed file: m.raw [=>--] 1.0GiB / 4.0GiB"),
            Seen::News
        );
        assert_eq!(t.counters(), Some((GIB, 4 * GIB)));
        assert_eq!(t.phase(), Some("Extracting compressed file: m.raw"));
        assert_eq!(
            t.feed("Extracting compressed file: m.raw: done"),
            Seen::News
        );
        assert_eq!(t.counters(), Some((4 * GIB, 4 * GIB)));
    }

    #[test]
    fn plain_lines_from_a_pipe_count_no_bytes() {
        let mut t = Tally::default();
        for line in [
            "Copying blob sha256:8a4c2e7d1f3b9a6c5e0d4f8b2a1c7e9d",
            "Copying config sha256:2f3b4c5d6e7f8a9b0c1d",
            "Writing manifest to image destination",
        ] {
            assert_eq!(t.feed(line), Seen::News, "{line}");
        }
        assert_eq!(t.counters(), None);
    }

    #[test]
    fn a_meter_tells_news_at_once_and_moving_counters_at_most_once_per_period() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut m = Meter::new(Duration::from_millis(200));
        let first = m
            .feed("Copying blob bbbbbbbbbbbb [>---] 1.0MiB / 100.0MiB", at(0))
            .expect("a new blob is news");
        assert!(first.news);
        assert_eq!(
            (first.done_bytes, first.total_bytes),
            (Some(MIB), Some(100 * MIB))
        );
        // Redraws every 50 ms: one reading per 200 ms.
        let told: Vec<u64> = (1..=10)
            .filter_map(|i| {
                let line = format!("Copying blob bbbbbbbbbbbb [=>--] {}.0MiB / 100.0MiB", 1 + i);
                m.feed(&line, at(50 * i))
                    .map(|r| r.done_bytes.unwrap_or(0) / MIB)
            })
            .collect();
        assert_eq!(told, vec![5, 9], "at 200 and 400 ms");
        assert_eq!(
            m.feed(
                "Copying blob bbbbbbbbbbbb [=>--] 11.0MiB / 100.0MiB",
                at(520)
            ),
            None
        );
        let last = m.flush(at(530)).expect("the held-back state");
        assert_eq!(last.done_bytes, Some(11 * MIB));
        assert!(!last.news);
        assert_eq!(m.flush(at(540)), None, "told once");
        let done = m
            .feed("Copying blob bbbbbbbbbbbb done", at(541))
            .expect("done is news, whatever the pace");
        assert_eq!(done.done_bytes, Some(100 * MIB));
    }

    #[test]
    fn the_eta_follows_the_rate_since_the_first_counters() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut m = Meter::new(Duration::from_millis(200));
        let r = m
            .feed("Copying blob bbbbbbbbbbbb [>---] 0.0b / 100.0MiB", at(0))
            .expect("news");
        assert_eq!(r.eta_secs, None, "no rate yet");
        let r = m
            .feed("Copying blob bbbbbbbbbbbb [=>--] 10.0MiB / 100.0MiB", at(2))
            .expect("moved");
        assert_eq!(r.eta_secs, Some(18), "10 MiB in 2 s: 90 MiB in 18 s");
        // A second blob appears: more to do at the same rate.
        let r = m
            .feed("Copying blob cccccccccccc [>---] 0.0b / 50.0MiB", at(2))
            .expect("news");
        assert_eq!(r.eta_secs, Some(28));
        // The extraction starts over.
        let r = m
            .feed(
                "Extracting compressed file: m.raw [>---] 1.0MiB / 10.0MiB",
                at(10),
            )
            .expect("news");
        assert_eq!(r.eta_secs, None, "a new phase has no rate yet");
        let r = m
            .feed(
                "Extracting compressed file: m.raw [=>--] 5.0MiB / 10.0MiB",
                at(12),
            )
            .expect("moved");
        assert_eq!(
            r.eta_secs,
            Some(3),
            "4 MiB in 2 s: 5 MiB in 2.5 s, rounded up"
        );
    }
}
