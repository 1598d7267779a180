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

#[cfg(test)]
mod tests {
    use super::*;

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
