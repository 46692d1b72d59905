//! The workspace's one source of randomness: the kernel's (`getrandom(2)`), for IDs, upload
//! names, token keys and scratch directory names alike.

/// Fill `buf` with random bytes from the kernel. Fails only if the kernel cannot supply them
/// (no fallback to anything weaker).
pub fn fill(buf: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(buf).map_err(|e| std::io::Error::other(format!("the system's random number generator failed: {e}")))
}

/// `n` random bytes as lowercase hex (`2 * n` characters).
pub fn hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // The kernel's generator does not fail on Linux once booted; an ID must never be predictable.
    fill(&mut b).expect("getrandom");
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ() {
        let (a, b) = (super::hex(32), super::hex(32));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
