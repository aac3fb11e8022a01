//! Per-partition throughput: DynamoDB serves at most 1,000 write units and
//! 3,000 read units per second from one partition key value (on-demand tables
//! included), for the table and for each global secondary index. A sliding
//! one-second budget per partition, and the record of what each partition
//! consumed and how often it was throttled, for tests to read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One partition key value of a table, or of one of its indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub table: String,
    /// The global secondary index, `None` for the table itself.
    pub index: Option<String>,
    /// The partition key value as text (a number's digits, binary's base64);
    /// empty for a Scan, which reads every partition.
    pub key: String,
}

impl Partition {
    pub fn table(table: &str, key: &str) -> Self {
        Self {
            table: table.to_owned(),
            index: None,
            key: key.to_owned(),
        }
    }

    pub fn index(table: &str, index: &str, key: &str) -> Self {
        Self {
            table: table.to_owned(),
            index: Some(index.to_owned()),
            key: key.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
}

/// What one partition consumed since the last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub write_units: f64,
    pub read_units: f64,
    /// Requests refused because this partition was over its budget.
    pub throttles: u64,
}

/// Partitions recorded at most; later ones add to [`OVERFLOW_KEY`].
const MAX_RECORDED: usize = 10_000;
/// The key of the entry that collects partitions past [`MAX_RECORDED`].
pub const OVERFLOW_KEY: &str = "(other partitions)";

const SECOND: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Throughput {
    read_per_second: f64,
    write_per_second: f64,
    windows: HashMap<(Partition, Kind), VecDeque<(Instant, f64)>>,
    usage: HashMap<Partition, Usage>,
}

impl Throughput {
    /// DynamoDB's per-partition limits times `scale`.
    pub fn new(scale: f64) -> Self {
        Self {
            read_per_second: 3000.0 * scale,
            write_per_second: 1000.0 * scale,
            windows: HashMap::new(),
            usage: HashMap::new(),
        }
    }

    /// Whether `partition` already consumed its budget in the last second.
    pub fn exhausted(&mut self, partition: &Partition, kind: Kind, now: Instant) -> bool {
        let limit = match kind {
            Kind::Read => self.read_per_second,
            Kind::Write => self.write_per_second,
        };
        let Some(window) = self.windows.get_mut(&(partition.clone(), kind)) else {
            return limit <= 0.0;
        };
        while window
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= SECOND)
        {
            window.pop_front();
        }
        window.iter().map(|(_, units)| units).sum::<f64>() >= limit
    }

    /// `partition` consumed `units` at `now`.
    pub fn charge(&mut self, partition: &Partition, kind: Kind, units: f64, now: Instant) {
        self.windows.retain(|_, w| {
            w.back()
                .is_some_and(|(at, _)| now.duration_since(*at) < SECOND)
        });
        self.windows
            .entry((partition.clone(), kind))
            .or_default()
            .push_back((now, units));
        let usage = self.usage_mut(partition);
        match kind {
            Kind::Read => usage.read_units += units,
            Kind::Write => usage.write_units += units,
        }
    }

    /// `partition` refused a request.
    pub fn throttled(&mut self, partition: &Partition) {
        self.usage_mut(partition).throttles += 1;
    }

    fn usage_mut(&mut self, partition: &Partition) -> &mut Usage {
        if self.usage.len() >= MAX_RECORDED && !self.usage.contains_key(partition) {
            let overflow = Partition {
                table: partition.table.clone(),
                index: None,
                key: OVERFLOW_KEY.to_owned(),
            };
            return self.usage.entry(overflow).or_default();
        }
        self.usage.entry(partition.clone()).or_default()
    }

    pub fn usage(&self, partition: &Partition) -> Usage {
        self.usage.get(partition).copied().unwrap_or_default()
    }

    pub fn all(&self) -> BTreeMap<Partition, Usage> {
        self.usage.iter().map(|(p, u)| (p.clone(), *u)).collect()
    }

    /// Forgets the record and the budgets' windows.
    pub fn reset(&mut self) {
        self.windows.clear();
        self.usage.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_refused_once_its_second_is_spent() {
        let mut t = Throughput::new(0.005);
        let p = Partition::table("t", "a");
        let other = Partition::table("t", "b");
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(!t.exhausted(&p, Kind::Write, t0));
            t.charge(&p, Kind::Write, 1.0, t0);
        }
        assert!(t.exhausted(&p, Kind::Write, t0));
        assert!(!t.exhausted(&p, Kind::Read, t0));
        assert!(!t.exhausted(&other, Kind::Write, t0));
        assert!(!t.exhausted(&p, Kind::Write, t0 + SECOND));
        t.throttled(&p);
        assert_eq!(
            t.usage(&p),
            Usage {
                write_units: 5.0,
                read_units: 0.0,
                throttles: 1
            }
        );
    }

    #[test]
    fn the_record_is_bounded() {
        let mut t = Throughput::new(1.0);
        let t0 = Instant::now();
        for i in 0..MAX_RECORDED + 10 {
            t.charge(&Partition::table("t", &i.to_string()), Kind::Read, 1.0, t0);
        }
        assert_eq!(t.all().len(), MAX_RECORDED + 1);
        assert_eq!(
            t.usage(&Partition::table("t", OVERFLOW_KEY)).read_units,
            10.0
        );
    }
}
