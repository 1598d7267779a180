//! The records of an account's lifecycle: password-reset, recovery and address-change
//! tokens, and what an address change did.

use latchkey_core::UnixTime;

/// What an account token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountTokenPurpose {
    /// A forgotten password's reset link.
    PasswordReset,
    /// An administrator's recovery link for a user who lost every factor.
    Recovery,
    /// A user's own recovery link, usable after a waiting period.
    SelfRecovery,
    /// The code that confirms a new email address.
    EmailChange,
    /// The code that confirms a new phone number.
    PhoneChange,
}

impl AccountTokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::Recovery => "recovery",
            Self::SelfRecovery => "self_recovery",
            Self::EmailChange => "email_change",
            Self::PhoneChange => "phone_change",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::PasswordReset, Self::Recovery, Self::SelfRecovery, Self::EmailChange, Self::PhoneChange]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// An account token to store; `secret_hash` is the keyed hash of its token or code.
#[derive(Debug, Clone)]
pub struct NewAccountToken {
    pub id: String,
    pub user_id: String,
    pub purpose: AccountTokenPurpose,
    pub secret_hash: Vec<u8>,
    /// For an address change: the new address.
    pub new_address: Option<String>,
    pub created_at: UnixTime,
    /// Not spendable before this.
    pub usable_at: UnixTime,
    pub expires_at: UnixTime,
}

/// An account token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToken {
    pub id: String,
    pub user_id: String,
    pub purpose: AccountTokenPurpose,
    pub secret_hash: Vec<u8>,
    pub new_address: Option<String>,
    pub attempts: i64,
    pub created_at: UnixTime,
    pub usable_at: UnixTime,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
}

/// The address an address-change token gives the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewAddress<'a> {
    Email { address: &'a str, normalized: &'a str },
    Phone { number: &'a str },
}

/// What an address change did: the address it replaced and how many factors that sent
/// to the old address now send to the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressChanged {
    pub old: Option<String>,
    pub moved_factors: u64,
}
