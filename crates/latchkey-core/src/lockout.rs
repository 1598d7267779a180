//! Brute-force protection for second factors: every attempt counts as a failure until
//! it succeeds; after a few consecutive failures each further attempt must wait an
//! increasing delay, and after many the second factor locks until an administrator
//! resets it. The counting itself is done atomically by the store.

/// The limits, with the defaults of DESIGN rule 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures allowed without delay.
    pub free_failures: u32,
    /// Delay after the first failure past the free ones, in seconds; it doubles with
    /// every further failure.
    pub base_delay_secs: i64,
    /// The longest delay, in seconds.
    pub max_delay_secs: i64,
    /// Consecutive failures after which the second factor locks.
    pub lock_after: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { free_failures: 5, base_delay_secs: 30, max_delay_secs: 15 * 60, lock_after: 100 }
    }
}

impl LockoutPolicy {
    /// How long the next attempt must wait after the `failures`-th consecutive failure.
    pub fn delay_after(&self, failures: u32) -> i64 {
        if failures < self.free_failures {
            return 0;
        }
        let doublings = (failures - self.free_failures).min(30);
        self.base_delay_secs.saturating_mul(1i64 << doublings).min(self.max_delay_secs)
    }

    /// Delays after failure counts `free_failures ..= free_failures + n`, the last one
    /// also applying to every count above; lets the store compute the next deadline in
    /// the same statement that counts the failure.
    pub fn delay_table(&self) -> Vec<(u32, i64)> {
        let mut table = Vec::new();
        let mut failures = self.free_failures;
        loop {
            let delay = self.delay_after(failures);
            table.push((failures, delay));
            if delay >= self.max_delay_secs || failures >= self.lock_after {
                return table;
            }
            failures += 1;
        }
    }

    pub fn is_locked(&self, failures: u32) -> bool {
        failures >= self.lock_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_five_failures_double_and_cap() {
        let policy = LockoutPolicy::default();
        let delays: Vec<i64> = (1..=11).map(|n| policy.delay_after(n)).collect();
        assert_eq!(delays, [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(policy.delay_after(99), 900);
        assert!(!policy.is_locked(99));
        assert!(policy.is_locked(100));
    }

    #[test]
    fn delay_table_covers_every_count_up_to_the_cap() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.delay_table(), vec![(5, 30), (6, 60), (7, 120), (8, 240), (9, 480), (10, 900)]);
        let tiny =
            LockoutPolicy { free_failures: 1, base_delay_secs: 1, max_delay_secs: 1_000_000, lock_after: 3 };
        assert_eq!(tiny.delay_table(), vec![(1, 1), (2, 2), (3, 4)]);
    }
}
