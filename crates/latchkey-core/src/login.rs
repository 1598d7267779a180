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

#[cfg(test)]
mod tests {
    use super::*;

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
