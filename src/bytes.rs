//! Byte search and comparison over 64-bit words, for snapshot-sized content: the one
//! substring search of the crate ([`find_bytes`]) and an equality test ([`same_bytes`]).
//!
//! Pure functions over slices: they never allocate, never panic on any input, and never
//! read a byte outside the slices they are given.

/// Offset of the first occurrence of `needle` in `hay` (`None` for an empty needle).
/// Eight candidate offsets at a time are filtered on the needle's first and last bytes
/// (a zero-byte test on 64-bit words), and only the survivors are compared in full: on
/// text, a few word operations per eight bytes, for snapshot-sized content.
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, &last) = (needle.first()?, needle.last()?);
    let span = needle.len() - 1;
    // Candidate offsets are 0..starts.
    let starts = hay.len().checked_sub(span)?;
    let (first, last) = (splat(first), splat(last));
    let mut at = 0;
    while at + 8 <= starts {
        let (Some(a), Some(z)) = (word_at(hay, at), word_at(hay, at + span)) else {
            break;
        };
        let mut found = zero_bytes(a ^ first) & zero_bytes(z ^ last);
        while found != 0 {
            let i = at + (found.trailing_zeros() / 8) as usize;
            if hay.get(i..i + needle.len()) == Some(needle) {
                return Some(i);
            }
            found &= found - 1;
        }
        at += 8;
    }
    (at..starts).find(|&i| hay.get(i..i + needle.len()) == Some(needle))
}

/// Whether two contents are equal, compared eight bytes at a time: a large file that did
/// not change is compared on every write, and a byte-at-a-time `memcmp` (as in musl) would
/// make that the slowest part of an update.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (words_a, words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails_equal = words_a.remainder() == words_b.remainder();
    tails_equal
        && words_a.zip(words_b).all(|(x, y)| {
            let x: [u8; 8] = x.try_into().unwrap_or_default();
            let y: [u8; 8] = y.try_into().unwrap_or_default();
            u64::from_ne_bytes(x) == u64::from_ne_bytes(y)
        })
}

/// `byte` in each of the eight bytes of a word.
#[inline(always)]
fn splat(byte: u8) -> u64 {
    0x0101_0101_0101_0101 * u64::from(byte)
}

/// The eight bytes at `at` as a little-endian word.
#[inline(always)]
fn word_at(hay: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = hay.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The high bit set in each byte of `x` that is zero, and possibly in bytes above a zero
/// one: never a miss, sometimes a candidate too many (which the full comparison drops).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_agrees_with_equality() {
        let base: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 999, 1000] {
            let a = &base[..len];
            assert!(same_bytes(a, a), "{len}");
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!same_bytes(a, &b), "{len} {at}");
            }
            assert!(!same_bytes(a, &base[..len + 1]), "{len}");
        }
    }

    #[test]
    fn find_bytes_agrees_with_a_plain_search() {
        let table: &[(&[u8], &[u8], Option<usize>)] = &[
            (b"", b"", None),
            (b"abc", b"", None),
            (b"", b"a", None),
            (b"a", b"a", Some(0)),
            (b"ab", b"abc", None),
            (b"xxxxxxxxxxxxxxxxab", b"ab", Some(16)),
            (b"aaaaaaaaaaaaaaaaaaab", b"aab", Some(17)),
            (b"resources: []\nresources", b"resources", Some(0)),
            (b"0123456789/", b"/", Some(10)),
            (b"\x80\x81\xff\xfe\x00\x01", b"\x00\x01", Some(4)),
        ];
        for (hay, needle, want) in table {
            assert_eq!(find_bytes(hay, needle), *want, "{hay:?} {needle:?}");
        }
        // Every length and alignment, over a small alphabet so that near-misses abound.
        let mut rng = crate::backoff::Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next_u64();
        for _ in 0..20_000 {
            let hay: Vec<u8> = (0..next() % 48)
                .map(|_| b"ab\x80"[(next() % 3) as usize])
                .collect();
            let needle: Vec<u8> = (0..1 + next() % 5)
                .map(|_| b"ab\x80"[(next() % 3) as usize])
                .collect();
            let plain = hay
                .windows(needle.len())
                .position(|w| w == needle.as_slice());
            assert_eq!(find_bytes(&hay, &needle), plain, "{hay:?} {needle:?}");
        }
    }
}
