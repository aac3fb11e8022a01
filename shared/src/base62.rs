//! Fixed-width base62 over big-endian byte strings.
//!
//! Keys need a *fixed* width so that a truncated or padded key is rejected by
//! its length alone, and so that leading zero bytes survive a round trip.
//! General-purpose base-x crates drop leading zeros, hence this small codec.

/// The alphabet, in value order: digits, upper case, lower case.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Value of one base62 character, or `None` outside the alphabet.
pub fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

/// Number of base62 characters that hold every value of `bytes` bytes.
pub const fn width_for(bytes: usize) -> usize {
    // ceil(bytes * 8 / log2(62)); log2(62) ~= 5.9542. Exact for the sizes we use
    // (4 -> 6, 16 -> 22, 32 -> 43), checked by a unit test.
    (bytes * 8 * 10_000).div_ceil(59_542)
}

/// Encode `bytes` (big-endian number) into exactly `width` characters.
/// Returns `None` if the number does not fit.
pub fn encode_fixed(bytes: &[u8], width: usize) -> Option<String> {
    let mut num = bytes.to_vec();
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        let mut rem: u32 = 0;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    if num.iter().any(|b| *b != 0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Decode a fixed-width string into exactly `len` big-endian bytes.
/// Returns `None` on a character outside the alphabet or on overflow.
pub fn decode_fixed(text: &str, len: usize) -> Option<Vec<u8>> {
    let mut num = vec![0u8; len];
    for c in text.bytes() {
        let mut carry = u32::from(digit(c)?);
        for byte in num.iter_mut().rev() {
            let acc = u32::from(*byte) * 62 + carry;
            *byte = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(num)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn widths_cover_the_byte_ranges() {
        assert_eq!(width_for(4), 6);
        assert_eq!(width_for(16), 22);
        assert_eq!(width_for(32), 43);
        // The widths are tight: the largest value fits, one character less does not.
        assert!(encode_fixed(&[0xff; 32], 43).is_some());
        assert!(encode_fixed(&[0xff; 32], 42).is_none());
        assert!(encode_fixed(&[0xff; 4], 5).is_none());
    }

    #[test]
    fn rejects_foreign_characters_and_overflow() {
        assert!(decode_fixed("00000-", 4).is_none());
        assert!(decode_fixed("zzzzzz", 4).is_none(), "62^6 - 1 exceeds u32");
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 32)) {
            let text = encode_fixed(&bytes, 43).unwrap();
            prop_assert_eq!(text.len(), 43);
            prop_assert_eq!(decode_fixed(&text, 32).unwrap(), bytes);
        }
    }
}
