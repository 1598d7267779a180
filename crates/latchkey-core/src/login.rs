//! The first step of login as an explicit decision: given what is known about the
//! account and whether the password matched, the outcome is fixed. Every way of
//! failing yields the same `Denied`, so callers cannot reveal which one happened.

/// What the store knows about the account a login names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// No account has this email address.
    Unknown,
    /// The account exists but has no password (created by an admin without one).
    NoPassword,
    /// The account has been disabled by an operator.
    Disabled,
    /// The account can log in with a password.
    Active,
}

/// The result of checking the first factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFactorOutcome {
    /// The password is right and the account may log in.
    Authenticated,
    /// Login fails with the one message used for every failure.
    Denied,
}

/// Decides the first factor. `password_matches` must come from a real hash check in
/// every case (against a dummy hash when the account has no usable password) so that
/// the time taken does not depend on the account.
pub fn decide_first_factor(account: AccountState, password_matches: bool) -> FirstFactorOutcome {
    match (account, password_matches) {
        (AccountState::Active, true) => FirstFactorOutcome::Authenticated,
        _ => FirstFactorOutcome::Denied,
    }
}

/// What a successful first factor leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFirstFactor {
    /// No second factor is set up: a full session at `aal1`.
    Session,
    /// The account has an active second factor: only an MFA token, never a session.
    SecondFactorRequired,
}

/// A first factor never yields a full session for a user with an active factor.
pub fn after_first_factor(active_factors: usize) -> AfterFirstFactor {
    if active_factors == 0 { AfterFirstFactor::Session } else { AfterFirstFactor::SecondFactorRequired }
}

/// How first-factor failures are throttled for one kind of key (an account, a
/// remembered device, a client IP) (DESIGN rule 16). Failures are counted in the
/// database; past `free_failures` each further attempt must wait a delay that starts
/// at `base_delay_secs` and doubles up to `max_delay_secs`. Unlike the second-factor
/// guard nothing locks: a first factor that locked would let anyone lock anyone out.
/// A count whose last attempt is older than `forget_after_secs` starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub free_failures: u32,
    pub base_delay_secs: i64,
    pub max_delay_secs: i64,
    pub forget_after_secs: i64,
}

impl ThrottlePolicy {
    /// The defaults for an account (or a device it trusts): five free failures.
    pub const ACCOUNT: Self =
        Self { free_failures: 5, base_delay_secs: 30, max_delay_secs: 15 * 60, forget_after_secs: 86_400 };
    /// The defaults for a client IP, which many people may share: twenty.
    pub const CLIENT_IP: Self =
        Self { free_failures: 20, base_delay_secs: 30, max_delay_secs: 15 * 60, forget_after_secs: 86_400 };

    /// How long the next attempt must wait after the `failures`-th failure.
    pub fn delay_after(&self, failures: u32) -> i64 {
        crate::lockout::backoff(failures, self.free_failures, self.base_delay_secs, self.max_delay_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_factor_delays_start_after_the_free_failures_and_never_lock() {
        let account: Vec<i64> = (1..=8).map(|n| ThrottlePolicy::ACCOUNT.delay_after(n)).collect();
        assert_eq!(account, [0, 0, 0, 0, 30, 60, 120, 240]);
        assert_eq!(ThrottlePolicy::ACCOUNT.delay_after(10_000), 900);
        assert_eq!(ThrottlePolicy::CLIENT_IP.delay_after(19), 0);
        assert_eq!(ThrottlePolicy::CLIENT_IP.delay_after(20), 30);
    }

    #[test]
    fn an_active_factor_always_means_a_second_step() {
        assert_eq!(after_first_factor(0), AfterFirstFactor::Session);
        assert_eq!(after_first_factor(1), AfterFirstFactor::SecondFactorRequired);
        assert_eq!(after_first_factor(3), AfterFirstFactor::SecondFactorRequired);
    }

    #[test]
    fn only_an_active_account_with_the_right_password_gets_in() {
        assert_eq!(decide_first_factor(AccountState::Active, true), FirstFactorOutcome::Authenticated);
        for account in
            [AccountState::Unknown, AccountState::NoPassword, AccountState::Disabled, AccountState::Active]
        {
            assert_eq!(decide_first_factor(account, false), FirstFactorOutcome::Denied);
        }
        for account in [AccountState::Unknown, AccountState::NoPassword, AccountState::Disabled] {
            assert_eq!(decide_first_factor(account, true), FirstFactorOutcome::Denied);
        }
    }
}
