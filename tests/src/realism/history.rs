//! Past images of the items written through the proxy, so an eventually
//! consistent read can answer with the item as it stood a while ago.
//!
//! Deterministic on purpose: a stale read always sees the image as of
//! `now - window`, never a random mix, so tests repeat. Memory stays bounded:
//! per item only images younger than the window are kept, plus the newest
//! older one (the base); an item whose base is all that is left is forgotten,
//! since reads of it may then pass through unchanged.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::units::Item;

/// One image of an item: `None` where it did not exist. `at` is `None` for
/// the image found before the first write through the proxy.
#[derive(Debug, Clone)]
struct Version {
    at: Option<Instant>,
    image: Option<Item>,
}

/// An item: its table and its primary key (canonical text).
pub type ItemKey = (String, String);

/// How many writes between sweeps for forgettable items.
const SWEEP_EVERY: u32 = 512;

#[derive(Debug)]
pub struct History {
    window: Duration,
    items: HashMap<ItemKey, VecDeque<Version>>,
    since_sweep: u32,
}

impl History {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            items: HashMap::new(),
            since_sweep: 0,
        }
    }

    fn cutoff(&self, now: Instant) -> Option<Instant> {
        now.checked_sub(self.window)
    }

    /// A write found `before` and left `after` at `now`.
    pub fn record(
        &mut self,
        key: ItemKey,
        before: Option<Item>,
        after: Option<Item>,
        now: Instant,
    ) {
        let cutoff = self.cutoff(now);
        let versions = self.items.entry(key).or_insert_with(|| {
            VecDeque::from([Version {
                at: None,
                image: before,
            }])
        });
        if versions.back().map(|v| &v.image) == Some(&after) {
            return;
        }
        versions.push_back(Version {
            at: Some(now),
            image: after,
        });
        prune(versions, cutoff);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.sweep(now);
        }
    }

    /// The item as it stood a window ago: `None` when the proxy knows no
    /// history of it (pass the answer through), `Some(None)` when it did
    /// not exist then.
    pub fn as_of(&self, key: &ItemKey, now: Instant) -> Option<Option<&Item>> {
        let versions = self.items.get(key)?;
        let cutoff = self.cutoff(now);
        let seen = |v: &&Version| match (v.at, cutoff) {
            (None, _) => true,
            (Some(at), Some(cutoff)) => at <= cutoff,
            (Some(_), None) => false,
        };
        let version = versions.iter().rev().find(seen)?;
        Some(version.image.as_ref())
    }

    /// Drops every item with nothing younger than the window.
    fn sweep(&mut self, now: Instant) {
        self.since_sweep = 0;
        let cutoff = self.cutoff(now);
        self.items.retain(|_, versions| {
            prune(versions, cutoff);
            versions.len() > 1 || versions[0].at.is_some_and(|at| Some(at) > cutoff)
        });
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// Keeps the newest version at or before `cutoff` as the base and all newer.
fn prune(versions: &mut VecDeque<Version>, cutoff: Option<Instant>) {
    while versions.len() > 1 && versions[1].at.zip(cutoff).is_some_and(|(at, c)| at <= c) {
        versions.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(n: u32) -> Option<Item> {
        json!({"pk": {"S": "a"}, "n": {"N": n.to_string()}})
            .as_object()
            .cloned()
    }

    #[test]
    fn reads_see_the_image_of_a_window_ago() {
        let mut h = History::new(Duration::from_secs(1));
        let key = ("t".to_owned(), "a".to_owned());
        let t0 = Instant::now();
        assert_eq!(h.as_of(&key, t0), None);
        h.record(key.clone(), None, image(1), t0);
        assert_eq!(h.as_of(&key, t0), Some(None));
        h.record(
            key.clone(),
            image(1),
            image(2),
            t0 + Duration::from_millis(500),
        );
        assert_eq!(h.as_of(&key, t0 + Duration::from_millis(900)), Some(None));
        assert_eq!(
            h.as_of(&key, t0 + Duration::from_millis(1200)),
            Some(image(1).as_ref())
        );
        assert_eq!(
            h.as_of(&key, t0 + Duration::from_millis(1600)),
            Some(image(2).as_ref())
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut h = History::new(Duration::from_millis(10));
        let t0 = Instant::now() + Duration::from_secs(1);
        for i in 0..2000u32 {
            let key = ("t".to_owned(), (i % 3).to_string());
            h.record(
                key,
                image(i),
                image(i + 1),
                t0 + Duration::from_millis(i.into()),
            );
        }
        assert!(h.items.values().all(|v| v.len() <= 12), "{h:?}");
        let later = t0 + Duration::from_secs(10);
        h.record(("t".into(), "x".into()), None, image(0), later);
        for _ in 0..SWEEP_EVERY {
            h.record(("t".into(), "x".into()), image(0), image(0), later);
        }
        h.sweep(later);
        assert_eq!(h.items.len(), 1);
    }
}
