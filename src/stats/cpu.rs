//! CPU time of a cgroup, and the rate (`usage_nano_cores`) computed from
//! two readings of it.
//!
//! The kernel keeps only the cumulative time, so a rate needs the previous
//! reading: [`CpuSampler`] holds one per subject (container or pod),
//! bounded in number, and forgets the subjects its caller no longer lists.
//! This module reads `cpuacct.usage` (v1) and `cpu.stat` (v2) and nothing
//! else.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::cgroup::{Cgroup, CgroupVersion};
use super::files::Files;
use super::StatsError;

/// Subjects whose previous reading is kept; a node runs at most a few
/// hundred containers, so the bound is only reached if the caller never
/// prunes.
pub const MAX_SAMPLES: usize = 8192;
/// Readings closer together than this give no new rate: a burst of calls
/// (kubelet housekeeping and a `crictl stats` a few milliseconds apart)
/// would otherwise report the noise of a tiny window. The earlier rate is
/// repeated instead.
pub const MIN_SAMPLE_INTERVAL_NS: i64 = 1_000_000_000;
/// When the table is full, readings older than this are dropped first.
pub const SAMPLE_TTL_NS: i64 = 10 * 60 * 1_000_000_000;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Cumulative CPU time of every task in the cgroup, in nanoseconds.
pub fn usage_ns(cgroup: &Cgroup, files: &mut Files<'_>) -> Result<u64, StatsError> {
    match cgroup.version() {
        CgroupVersion::V1 => files.u64(cgroup.cpu_dir(), "cpuacct.usage"),
        CgroupVersion::V2 => {
            let stat = files.keyed(cgroup.cpu_dir(), "cpu.stat")?;
            Ok(stat.require("usage_usec")?.saturating_mul(1000))
        }
    }
}

/// Average use over a window, in nanocores (1e9 is one core busy all the
/// time). `elapsed_ns` must be positive.
pub fn nano_cores(used_ns: u64, elapsed_ns: u64) -> u64 {
    if elapsed_ns == 0 {
        return 0;
    }
    let rate = u128::from(used_ns) * NANOS_PER_SECOND / u128::from(elapsed_ns);
    u64::try_from(rate).unwrap_or(u64::MAX)
}

/// The previous reading of each subject.
#[derive(Debug, Default)]
pub struct CpuSampler {
    samples: Mutex<HashMap<String, Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    timestamp_ns: i64,
    usage_ns: u64,
    /// The rate computed when this reading was taken.
    nano_cores: Option<u64>,
}

impl CpuSampler {
    pub fn new() -> CpuSampler {
        CpuSampler::default()
    }

    /// Records that `key` had used `usage_ns` at `timestamp_ns` (wall clock,
    /// nanoseconds since the epoch) and returns its rate since the previous
    /// reading: `None` for a first reading, and after the counter went back
    /// (a restarted container gets a fresh cgroup) or the clock did. Use one
    /// sampler per kind of subject: a sandbox's ID names both its pod and
    /// its own container.
    pub fn observe(&self, key: &str, timestamp_ns: i64, usage_ns: u64) -> Option<u64> {
        let mut samples = self.samples();
        let fresh = Sample {
            timestamp_ns,
            usage_ns,
            nano_cores: None,
        };
        let Some(previous) = samples.get_mut(key) else {
            make_room(&mut samples, timestamp_ns);
            samples.insert(key.to_owned(), fresh);
            return None;
        };
        let elapsed = timestamp_ns
            .checked_sub(previous.timestamp_ns)
            .unwrap_or(-1);
        if usage_ns < previous.usage_ns || elapsed < 0 {
            *previous = fresh;
            return None;
        }
        if elapsed < MIN_SAMPLE_INTERVAL_NS {
            return previous.nano_cores;
        }
        // `elapsed` is at least MIN_SAMPLE_INTERVAL_NS here, so positive.
        let rate = nano_cores(usage_ns - previous.usage_ns, elapsed.unsigned_abs());
        *previous = Sample {
            nano_cores: Some(rate),
            ..fresh
        };
        Some(rate)
    }

    /// Forgets every subject `keep` says is gone.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.samples().retain(|key, _| keep(key));
    }

    /// How many subjects have a reading.
    pub fn len(&self) -> usize {
        self.samples().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table holds plain values replaced whole: a panic elsewhere
    /// cannot leave it half-written.
    fn samples(&self) -> MutexGuard<'_, HashMap<String, Sample>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Frees a slot in a full table: expired readings first, else the oldest.
fn make_room(samples: &mut HashMap<String, Sample>, now_ns: i64) {
    if samples.len() < MAX_SAMPLES {
        return;
    }
    samples.retain(|_, s| now_ns.saturating_sub(s.timestamp_ns) <= SAMPLE_TTL_NS);
    if samples.len() < MAX_SAMPLES {
        return;
    }
    let oldest = samples
        .iter()
        .min_by_key(|(_, s)| s.timestamp_ns)
        .map(|(key, _)| key.clone());
    if let Some(key) = oldest {
        samples.remove(&key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stats::fixture::{self, Tree};

    const SECOND: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SECOND;

    #[test]
    fn usage_is_read_in_nanoseconds_under_both_versions() {
        for (version, driver) in fixture::LAYOUTS {
            let tree = Tree::new(version, driver);
            let cgroup = tree.container_cgroup();
            // The fixtures hold the same figure: 271347002 ns in v1's
            // cpuacct.usage, 271347 µs in v2's cpu.stat.
            let expected = match version {
                CgroupVersion::V1 => 271_347_002,
                CgroupVersion::V2 => 271_347_000,
            };
            assert_eq!(
                fixture::unkept(|files| usage_ns(&cgroup, files)).unwrap(),
                expected,
                "{version:?} {driver:?}"
            );
        }
    }

    #[test]
    fn a_cpu_stat_without_usage_is_a_parse_error() {
        let tree = Tree::new(CgroupVersion::V2, crate::api::v1::CgroupDriver::Systemd);
        tree.write_container("cpu.stat", "user_usec 5\n");
        let err = fixture::unkept(|files| usage_ns(&tree.container_cgroup(), files)).unwrap_err();
        assert!(matches!(err, StatsError::Parse { .. }), "{err}");
    }

    #[test]
    fn nano_cores_is_cpu_time_over_wall_time() {
        // Half a core for two seconds.
        assert_eq!(nano_cores(1_000_000_000, 2_000_000_000), 500_000_000);
        // Two cores busy.
        assert_eq!(nano_cores(20_000_000_000, 10_000_000_000), 2_000_000_000);
        assert_eq!(nano_cores(u64::MAX, 1), u64::MAX);
        assert_eq!(nano_cores(5, 0), 0);
    }

    #[test]
    fn the_second_reading_gives_the_rate() {
        let sampler = CpuSampler::new();
        assert_eq!(sampler.observe("c1", T0, 1_000_000_000), None);
        // 0.25 s of CPU over 10 s: 25 millicores.
        assert_eq!(
            sampler.observe("c1", T0 + 10 * SECOND, 1_250_000_000),
            Some(25_000_000)
        );
        // An idle interval.
        assert_eq!(
            sampler.observe("c1", T0 + 20 * SECOND, 1_250_000_000),
            Some(0)
        );
    }

    #[test]
    fn readings_too_close_together_repeat_the_previous_rate() {
        let sampler = CpuSampler::new();
        sampler.observe("c1", T0, 0);
        assert_eq!(sampler.observe("c1", T0 + SECOND / 1000, 1_000_000), None);
        assert_eq!(
            sampler.observe("c1", T0 + 2 * SECOND, SECOND as u64),
            Some(500_000_000)
        );
        assert_eq!(
            sampler.observe("c1", T0 + 2 * SECOND + 5_000_000, 5 * SECOND as u64),
            Some(500_000_000)
        );
        // The next rate is measured from the last reading that gave one.
        assert_eq!(
            sampler.observe("c1", T0 + 4 * SECOND, 3 * SECOND as u64),
            Some(1_000_000_000)
        );
    }

    #[test]
    fn a_counter_or_clock_going_back_starts_over() {
        let sampler = CpuSampler::new();
        sampler.observe("c1", T0, 5 * SECOND as u64);
        assert_eq!(sampler.observe("c1", T0 + 10 * SECOND, 1_000), None);
        assert_eq!(
            sampler.observe("c1", T0 + 20 * SECOND, 1_000 + SECOND as u64),
            Some(100_000_000)
        );
        assert_eq!(sampler.observe("c1", T0, 2 * SECOND as u64), None);
    }

    #[test]
    fn subjects_are_sampled_apart_and_pruned_on_request() {
        let sampler = CpuSampler::new();
        sampler.observe("c1", T0, 0);
        sampler.observe("c2", T0, 0);
        assert_eq!(
            sampler.observe("c2", T0 + SECOND, SECOND as u64),
            Some(1_000_000_000)
        );
        assert_eq!(sampler.observe("c1", T0 + SECOND, 0), Some(0));
        sampler.retain(|key| key == "c2");
        assert_eq!(sampler.len(), 1);
        assert_eq!(sampler.observe("c1", T0 + 2 * SECOND, 0), None);
    }

    #[test]
    fn a_full_table_drops_expired_then_oldest_readings() {
        let sampler = CpuSampler::new();
        for i in 0..MAX_SAMPLES {
            let at = T0 + i64::try_from(i).unwrap();
            sampler.observe(&format!("c{i}"), at, 0);
        }
        assert_eq!(sampler.len(), MAX_SAMPLES);
        // Nothing expired yet: the oldest goes.
        sampler.observe("new1", T0 + SECOND, 0);
        assert_eq!(sampler.len(), MAX_SAMPLES);
        assert_eq!(sampler.observe("c0", T0 + 2 * SECOND, 0), None);
        assert_eq!(sampler.observe("c2", T0 + 2 * SECOND, 0), Some(0));
        // Much later, every reading but the fresh ones has expired.
        sampler.observe("new2", T0 + SAMPLE_TTL_NS + 3 * SECOND, 0);
        assert_eq!(sampler.len(), 1);
    }
}
