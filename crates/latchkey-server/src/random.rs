//! The one place that reads the operating system's random number generator.

/// Fresh random bytes from the OS CSPRNG.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // Without the OS generator no secret can be made safely, so there is nothing
    // sensible to continue with; this has never been seen to fail on Linux.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}
