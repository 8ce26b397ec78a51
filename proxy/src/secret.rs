//! Comparing secrets (tokens, tags, shared keys).

/// Equal bytes, compared in time that depends on the lengths only, not on
/// where the first difference is.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_equal_bytes_are_the_same_secret() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(same_secret(b"", b""));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
