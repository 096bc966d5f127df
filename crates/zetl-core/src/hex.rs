//! Bytes as lowercase hex text and back: how cursors, keys and dead letters keep binary
//! values in text columns and files.

use std::fmt::Write as _;

pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `None` for text that is not whole pairs of hex digits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_back() {
        let bytes = [0u8, 1, 0x7f, 0xff];
        assert_eq!(super::encode(&bytes), "00017fff");
        assert_eq!(super::decode("00017fff").as_deref(), Some(&bytes[..]));
        assert_eq!(super::decode("0"), None);
        assert_eq!(super::decode("0g"), None);
        assert_eq!(super::decode("é0"), None);
    }
}
