//! Brute-force protection for second factors (DESIGN rule 4): every attempt counts as
//! a failure until it succeeds; after a few consecutive failures each further attempt
//! must wait an increasing delay, and after many the second factor locks until an
//! administrator resets it.
//!
//! ```text
//!                 attempt (counted first)              success
//!   ┌──────┐ ───────────────────────────▶ ┌───────────┐ ─────────▶ count = 0
//!   │ Free │   failures < free_failures   │ Counting  │
//!   └──────┘ ◀─────────────────────────── └───────────┘
//!                                             │ failures ≥ free_failures
//!                                             ▼
//!                                       ┌───────────┐  attempt before the deadline:
//!                                       │ Delayed   │  refused (429, Retry-After),
//!                                       │ until t+d │  not counted; d doubles per
//!                                       └───────────┘  failure, capped at max_delay
//!                                             │ failures ≥ lock_after
//!                                             ▼
//!                                       ┌───────────┐  every attempt refused (403)
//!                                       │ Locked    │  until an admin reset deletes
//!                                       └───────────┘  the factors and the count
//! ```
//!
//! This module is the policy: how long to wait after `n` failures. The decision is
//! made in the store, in one transaction per attempt
//! (`latchkey-store` `claim_second_factor_attempt`: count the attempt only if not
//! delayed or locked, then set the deadline from [`LockoutPolicy::delay_after`]), so
//! it holds across requests and instances; a success resets the count
//! (`reset_second_factor_failures`).

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
        backoff(failures, self.free_failures, self.base_delay_secs, self.max_delay_secs)
    }

    /// Whether `failures` consecutive failures lock the second factor.
    pub fn is_locked(&self, failures: u32) -> bool {
        failures >= self.lock_after
    }
}

/// The delay after the `failures`-th consecutive failure when `free` are allowed
/// without one: `base` seconds, doubling with each further failure, capped at `max`.
pub fn backoff(failures: u32, free: u32, base: i64, max: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = (failures - free).min(30);
    base.saturating_mul(1i64 << doublings).min(max)
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
}
