//! What a container keeps between decisions about hot allowances (see
//! `store/allowance-design.md`): shards known to be exhausted for their
//! window, and usage detail counted here until it is flushed. Pure data,
//! time passed in.

use std::collections::{BTreeMap, HashMap};

use crate::clock::Timestamp;
use crate::decision::DenyReason;

/// Most distinct counters one allowance's unflushed detail holds before it
/// is flushed whatever its age (one `UpdateItem` takes them all, well under
/// DynamoDB's 4 KB expression limit with short placeholders).
pub const MAX_PENDING: usize = 100;

/// Seconds usage detail waits in the container before it is flushed (on
/// the container's next decision): the bound on what a container frozen for
/// good loses. Each container waits between half of it and all of it (drawn
/// once), so containers started together do not flush together. Every busy
/// container flushes to the allowance's root, whose item (the day's detail)
/// costs up to 6 write units a write: at 1,000 containers, one flush per 10 s
/// cost 0.05 write units per allowed decision at 10,000/s in the simulation
/// (and throttled the root as they flushed in step); one per 30-60 s costs
/// under 0.01.
pub const FLUSH_AFTER: i64 = 60;

/// A limit found exhausted on one item of an allowance (0: the root of a
/// single allowance, else the shard index), for one key at one record
/// version (a rotated key and its successor share the allowance, but each
/// counts its own versions).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    key: String,
    version: u64,
    reason: DenyReason,
    /// The end of the window or period that is exhausted.
    until: Timestamp,
}

/// Exhausted items, by allowance and item.
#[derive(Debug, Default)]
pub struct Exhausted {
    marks: HashMap<String, HashMap<u32, Mark>>,
}

impl Exhausted {
    pub fn mark(
        &mut self,
        allowance: &str,
        item: u32,
        (key, version): (&str, u64),
        reason: DenyReason,
        until: Timestamp,
    ) {
        self.marks.entry(allowance.to_owned()).or_default().insert(
            item,
            Mark {
                key: key.to_owned(),
                version,
                reason,
                until,
            },
        );
    }

    /// Why `item` may not admit now, if a mark for this key at this record
    /// version says so.
    pub fn blocked(
        &self,
        allowance: &str,
        item: u32,
        (key, version): (&str, u64),
        now: Timestamp,
    ) -> Option<DenyReason> {
        let mark = self.marks.get(allowance)?.get(&item)?;
        (mark.key == key && mark.version == version && now < mark.until).then_some(mark.reason)
    }

    /// Forget every mark of an allowance (a record read anew, a new layout).
    pub fn clear(&mut self, allowance: &str) {
        self.marks.remove(allowance);
    }

    pub fn len(&self) -> usize {
        self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }
}

/// Limit denials per admission (plus one) in one rate window past which
/// this container treats the key as flooding it: in the next window it
/// reads the allowance before its first write (that write would almost
/// surely be refused), or sits the window out.
pub const FLOOD_RATIO: u64 = 4;

/// What the first decision of a rate window does, given how this
/// container's previous window of the key went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Write as usual (no flood, or not the window's first decision).
    Write,
    /// Read what is left first; write only if something is.
    ReadFirst,
    /// Deny this window locally without asking DynamoDB: the previous
    /// window here saw `ratio` times [`FLOOD_RATIO`] more denials than
    /// admissions, so other containers' requests fill the window anyway.
    /// Drawn with probability `1 - FLOOD_RATIO / ratio`, never twice in a
    /// row (so each container still tries at least every other window).
    SitOut,
}

/// How this container's decisions on each rate-limited allowance went in
/// the latest rate window it decided in.
#[derive(Debug, Default)]
pub struct Floods {
    windows: HashMap<String, Tally>,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    start: Timestamp,
    admitted: u64,
    denied: u64,
    /// This window was sat out.
    sat_out: bool,
}

impl Floods {
    /// The opening of the window starting at `start` (of `window` seconds),
    /// `draw` a uniform number in [0, 1): [`Opening::Write`] unless this
    /// container's window just before was a flood and this is the first
    /// decision of the new window here.
    pub fn opening(&self, allowance: &str, start: Timestamp, window: u32, draw: f64) -> Opening {
        let Some(t) = self.windows.get(allowance) else {
            return Opening::Write;
        };
        if t.start != start - i64::from(window) || t.denied < FLOOD_RATIO * (t.admitted + 1) {
            return Opening::Write;
        }
        let ratio = t.denied as f64 / (t.admitted + 1) as f64;
        if !t.sat_out && draw >= FLOOD_RATIO as f64 / ratio {
            Opening::SitOut
        } else {
            Opening::ReadFirst
        }
    }

    /// Count one decision made in the window starting at `start`:
    /// admitted, or denied for a limit (`sat_out`: by sitting the window out).
    pub fn count(&mut self, allowance: &str, start: Timestamp, admitted: bool, sat_out: bool) {
        let t = self.windows.entry(allowance.to_owned()).or_insert(Tally {
            start,
            admitted: 0,
            denied: 0,
            sat_out,
        });
        if t.start != start {
            *t = Tally {
                start,
                admitted: 0,
                denied: 0,
                sat_out,
            };
        }
        if admitted {
            t.admitted += 1;
        } else {
            t.denied += 1;
        }
    }

    /// Whether this container sits out the window starting at `start`.
    pub fn sitting_out(&self, allowance: &str, start: Timestamp) -> bool {
        self.windows
            .get(allowance)
            .is_some_and(|t| t.start == start && t.sat_out)
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }
}

/// How fast the items this container writes take admissions, from the
/// write counts the writes return.
#[derive(Debug, Default)]
pub struct Load {
    seen: HashMap<String, (Timestamp, u64)>,
}

impl Load {
    /// Record that `item` had taken `writes` admissions at `now`; the rate
    /// since the first count of at least a second before, if there is one
    /// (then measuring starts again from here).
    pub fn observe(&mut self, item: &str, now: Timestamp, writes: u64) -> Option<f64> {
        match self.seen.get(item).copied() {
            Some((at, before)) if now - at >= 1 => {
                self.seen.insert(item.to_owned(), (now, writes));
                Some(writes.saturating_sub(before) as f64 / (now - at) as f64)
            }
            Some(_) => None,
            None => {
                self.seen.insert(item.to_owned(), (now, writes));
                None
            }
        }
    }
}

/// Usage detail of one allowance counted here and not yet written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// When the oldest unflushed count was made.
    pub since: Timestamp,
    /// Counter attribute name -> amount to add.
    pub counts: BTreeMap<String, u64>,
    /// Address slot attribute name -> address (set if still free).
    pub slots: BTreeMap<String, String>,
}

/// Unflushed detail, by allowance.
#[derive(Debug, Default)]
pub struct Detail {
    pending: HashMap<String, Pending>,
    /// This container's wait, in [`FLUSH_AFTER`] / 2 ..= [`FLUSH_AFTER`]
    /// seconds (0: not drawn yet).
    wait: i64,
}

impl Detail {
    pub fn count(&mut self, allowance: &str, name: String, now: Timestamp) {
        let p = self.entry(allowance, now);
        *p.counts.entry(name).or_default() += 1;
    }

    pub fn slot(&mut self, allowance: &str, name: String, address: String, now: Timestamp) {
        let p = self.entry(allowance, now);
        p.slots.entry(name).or_insert(address);
    }

    fn entry(&mut self, allowance: &str, now: Timestamp) -> &mut Pending {
        self.pending
            .entry(allowance.to_owned())
            .or_insert_with(|| Pending {
                since: now,
                ..Pending::default()
            })
    }

    /// One allowance's detail that is due (old enough, or large), taken out.
    pub fn take_due(&mut self, now: Timestamp) -> Option<(String, Pending)> {
        if self.wait == 0 {
            use rand::Rng;
            self.wait = rand::rng().random_range(FLUSH_AFTER / 2..=FLUSH_AFTER);
        }
        let wait = self.wait;
        let due = self
            .pending
            .iter()
            .find(|(_, p)| now - p.since >= wait || p.counts.len() + p.slots.len() >= MAX_PENDING)
            .map(|(a, _)| a.clone())?;
        self.pending.remove(&due).map(|p| (due, p))
    }

    /// Put back detail whose flush failed, merged with what came since.
    pub fn restore(&mut self, allowance: String, failed: Pending) {
        let p = self.pending.entry(allowance).or_default();
        p.since = p.since.min(failed.since);
        if p.since == 0 {
            p.since = failed.since;
        }
        for (name, n) in failed.counts {
            *p.counts.entry(name).or_default() += n;
        }
        for (name, ip) in failed.slots {
            p.slots.entry(name).or_insert(ip);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_hold_for_their_version_and_window() {
        let mut e = Exhausted::default();
        e.mark("a", 3, ("k1", 7), DenyReason::RateLimited, 100);
        assert_eq!(
            e.blocked("a", 3, ("k1", 7), 99),
            Some(DenyReason::RateLimited)
        );
        assert_eq!(
            e.blocked("a", 3, ("k1", 7), 100),
            None,
            "the window rolled over"
        );
        assert_eq!(e.blocked("a", 3, ("k1", 8), 99), None, "the record changed");
        assert_eq!(
            e.blocked("a", 3, ("k2", 7), 99),
            None,
            "another key of the lineage counts its own versions"
        );
        assert_eq!(e.blocked("a", 2, ("k1", 7), 99), None);
        e.clear("a");
        assert_eq!(e.blocked("a", 3, ("k1", 7), 99), None);
    }

    #[test]
    fn a_flooded_window_makes_the_next_one_read_first_or_sit_out() {
        let mut f = Floods::default();
        assert_eq!(f.opening("a", 100, 1, 0.0), Opening::Write);
        f.count("a", 99, true, false);
        for _ in 0..15 {
            f.count("a", 99, false, false);
        }
        // 15 denials for 1 admission: ratio 7.5, sit out with p = 1 - 4/7.5.
        assert_eq!(f.opening("a", 100, 1, 0.0), Opening::ReadFirst);
        assert_eq!(f.opening("a", 100, 1, 0.53), Opening::ReadFirst);
        assert_eq!(f.opening("a", 100, 1, 0.54), Opening::SitOut);
        assert_eq!(
            f.opening("a", 101, 1, 0.9),
            Opening::Write,
            "only the next window"
        );
        assert_eq!(f.opening("b", 100, 1, 0.9), Opening::Write);
        f.count("a", 100, false, true);
        assert!(f.sitting_out("a", 100));
        assert_eq!(
            f.opening("a", 100, 1, 0.9),
            Opening::Write,
            "only the window's first decision"
        );
        for _ in 0..20 {
            f.count("a", 100, false, true);
        }
        assert_eq!(
            f.opening("a", 101, 1, 0.99),
            Opening::ReadFirst,
            "never two windows sat out in a row"
        );
        let mut near = Floods::default();
        for _ in 0..8 {
            near.count("a", 99, true, false);
        }
        near.count("a", 99, false, false);
        near.count("a", 99, false, false);
        assert_eq!(
            near.opening("a", 100, 1, 0.99),
            Opening::Write,
            "a window that ended near its limit"
        );
    }

    #[test]
    fn load_is_measured_over_a_second_or_more() {
        let mut l = Load::default();
        assert_eq!(l.observe("a#0", 10, 1_000), None);
        assert_eq!(l.observe("a#0", 10, 1_200), None);
        assert_eq!(l.observe("a#0", 12, 1_800), Some(400.0));
        assert_eq!(l.observe("a#0", 13, 1_900), Some(100.0));
    }

    #[test]
    fn detail_is_due_when_old_enough_or_large() {
        let mut d = Detail::default();
        d.count("a", "u#d#k#r#GET /".into(), 10);
        d.count("a", "u#d#k#r#GET /".into(), 10);
        d.slot("a", "u#d#k#ip3".into(), "192.0.2.1".into(), 10);
        assert_eq!(d.take_due(10), None);
        assert_eq!(d.take_due(10 + FLUSH_AFTER / 2 - 1), None);
        let (a, p) = d.take_due(10 + FLUSH_AFTER).unwrap();
        assert_eq!(a, "a");
        assert_eq!(p.counts["u#d#k#r#GET /"], 2);
        assert!(d.is_empty());
        d.restore(a.clone(), p);
        let later = 10 + FLUSH_AFTER + 1;
        d.count("a", "u#d#k#r#GET /".into(), later);
        let (_, p) = d.take_due(later).unwrap();
        assert_eq!(
            p.counts["u#d#k#r#GET /"], 3,
            "a failed flush is kept, as old as it was"
        );
        for i in 0..MAX_PENDING {
            d.count("b", format!("c{i}"), later);
        }
        assert!(d.take_due(later).is_some(), "large detail goes at once");
    }
}
