//! The arithmetic of sharded allowances (see `allowance-design.md`): even
//! shares of a limit at the start of a period, and the slices a reslice
//! gives each shard mid-period. Pure; the store does the writes.

use crate::clock::Timestamp;

/// Most shards an allowance grows to: 64 partitions of 1,000 write units/s
/// each, and a record change that writes the root and every shard (66 items
/// with the record and its audit event) stays within a transaction's 100
/// items (DynamoDB API Reference, TransactWriteItems).
pub const MAX_SHARDS: u32 = 64;

/// The shard count an allowance grows to from `from` (1: single) when its
/// measured rate says it is heating: four times as many.
pub fn grown(from: u32) -> u32 {
    (from.max(1) * 4).clamp(4, MAX_SHARDS)
}

/// The shard count an allowance grows to from `from` when a write to it
/// was throttled: sixteen times as many (1 -> 16 -> 64). A throttle says
/// demand is already past what the item's partition serves, by an amount
/// no write count can show (a throttled write counts nothing), and every
/// growth step costs the key a second or more of throttled decisions; two
/// steps reach 64 shards, 64,000 write units a second.
pub fn grown_throttled(from: u32) -> u32 {
    grown(grown(from))
}

/// Shard `index`'s (1-based) even share of `limit` over `count` shards:
/// `floor(limit / count)`, plus one for the first `limit mod count`. The
/// shares of all shards sum to `limit`.
pub fn share(limit: u64, count: u32, index: u32) -> u64 {
    let count = u64::from(count.max(1));
    let index = u64::from(index.max(1)) - 1;
    limit / count + u64::from(index < limit % count)
}

/// One counter of one item as read: the start of the period (or window) it
/// counts, and how much of it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub start: Option<Timestamp>,
    pub used: u64,
}

impl Counter {
    /// What it has used in the period starting at `current` (0 if it counts
    /// an older one).
    pub fn used_in(&self, current: Timestamp) -> u64 {
        if self.start == Some(current) {
            self.used
        } else {
            0
        }
    }
}

/// A shard's new slice for the current period, and the condition it is
/// written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// The shard's counter as read: the write requires it unchanged in
    /// period, and used at most `limit`.
    pub read: Counter,
    /// Used in the current period after the write (kept if the shard was
    /// counting it, else 0).
    pub used: u64,
    /// The shard's slice of the current period.
    pub limit: u64,
}

/// The slices of `count` shards (index 1..=count; `shards[i-1]` as read, a
/// missing shard as `Counter::default()`) for the period starting at
/// `current`, given what the root used in it before the allowance went hot.
/// What is left of `limit` is shared evenly, over the first `eligible`
/// shards (the ones containers choose), on top of what each shard used;
/// the slices sum to `max(limit, used)` less the root's use, so no shard can
/// admit past the limit whatever its counter does before the write.
pub fn reslice(
    limit: u64,
    (count, eligible): (u32, u32),
    current: Timestamp,
    root_used: u64,
    shards: &[Counter],
) -> Vec<Slice> {
    let used: Vec<u64> = (0..count as usize)
        .map(|i| shards.get(i).map_or(0, |c| c.used_in(current)))
        .collect();
    let spent = root_used + used.iter().sum::<u64>();
    let left = limit.saturating_sub(spent);
    // Only the shards containers choose (those with a share of every
    // limit, [`crate::store::Target::eligible`]) get any of what is left.
    let eligible = eligible.clamp(1, count.max(1));
    (0..count)
        .map(|i| {
            let u = used[i as usize];
            let more = if i < eligible {
                share(left, eligible, i + 1)
            } else {
                0
            };
            Slice {
                read: shards.get(i as usize).copied().unwrap_or_default(),
                used: u,
                limit: u + more,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_growth_takes_two_steps_to_the_maximum() {
        assert_eq!((grown(1), grown(4), grown(16), grown(64)), (4, 16, 64, 64));
        assert_eq!(
            (grown_throttled(1), grown_throttled(4), grown_throttled(16)),
            (16, 64, 64)
        );
    }

    #[test]
    fn shares_sum_to_the_limit() {
        for limit in [0u64, 1, 5, 63, 64, 65, 1_000_000, 7] {
            for count in [1u32, 2, 4, 16, 64] {
                let sum: u64 = (1..=count).map(|i| share(limit, count, i)).sum();
                assert_eq!(sum, limit, "{limit} over {count}");
            }
        }
        assert_eq!(share(5, 4, 1), 2);
        assert_eq!(share(5, 4, 4), 1);
        assert_eq!(share(3, 4, 4), 0, "a shard with no share is never chosen");
    }

    #[test]
    fn growth_steps() {
        assert_eq!(grown(1), 4);
        assert_eq!(grown(4), 16);
        assert_eq!(grown(16), 64);
        assert_eq!(grown(64), 64);
    }

    #[test]
    fn a_reslice_keeps_what_was_used_and_never_exceeds_the_limit() {
        let now = 1_000;
        let shards = [
            Counter {
                start: Some(now),
                used: 30,
            },
            Counter {
                start: Some(now - 86_400),
                used: 99,
            },
        ];
        let slices = reslice(100, (4, 4), now, 10, &shards);
        assert_eq!(slices.len(), 4);
        assert_eq!(slices[0].used, 30);
        assert_eq!(slices[1].used, 0, "yesterday's count is not today's");
        let total: u64 = slices.iter().map(|s| s.limit).sum();
        assert_eq!(total + 10, 100, "slices + the root's use = the limit");
        assert!(slices.iter().all(|s| s.limit >= s.used));
        // Over the limit already (a limit lowered below use): no shard gets more.
        let over = reslice(20, (4, 4), now, 10, &shards);
        assert!(over.iter().all(|s| s.limit == s.used));
        // Only the shards a small rate limit lets containers choose get more.
        let two = reslice(100, (4, 2), now, 10, &shards);
        assert_eq!(two.iter().map(|s| s.limit).sum::<u64>() + 10, 100);
        assert_eq!((two[2].limit, two[3].limit), (0, 0));
    }
}
