//! Hash maps for the snapshot's lookup tables (token digests, server
//! names). Only the operator's config fills them (token digests are of
//! tokens the operator lists or the control plane generates): requests look
//! keys up and never add one, so no request can crowd a bucket, and std's keyed SipHash
//! (about 250 instructions per lookup of a 32-byte digest) buys nothing
//! here. Keys are hashed eight bytes at a time instead. Not for maps a
//! request or a remote party (a DNS answer) can add keys to.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map filled from config and only read by requests.
pub(crate) type ConfigMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Multiplies in eight bytes at a time (the mixing step rustc's own
/// hasher uses). Not keyed: see the module's note for why that is safe here.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in words.by_ref() {
            self.add(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    #[test]
    fn keys_are_found_and_hashes_spread() {
        let mut names: ConfigMap<Box<str>, usize> = ConfigMap::default();
        for i in 0..1000 {
            names.insert(format!("server-{i}").into(), i);
        }
        for i in 0..1000 {
            assert_eq!(names.get(format!("server-{i}").as_str()), Some(&i));
        }
        assert_eq!(names.get("server-1000"), None);
        // Names that differ only past the first eight bytes, or in length.
        let build = BuildHasherDefault::<WordHasher>::default();
        let hashes: HashSet<u64> = ["abcdefgh1", "abcdefgh2", "abcdefgh", "abcdefgh\0"]
            .iter()
            .map(|n| build.hash_one(n))
            .collect();
        assert_eq!(hashes.len(), 4);
        // Digests: the top seven bits (hashbrown's tag) take many values.
        let tags: HashSet<u64> = (0u8..=255).map(|b| build.hash_one([b; 32]) >> 57).collect();
        assert!(tags.len() > 64, "{}", tags.len());
    }
}
