//! Byte tests on the short texts of a row (cells, property names), eight bytes at a time:
//! finding the few bytes that make a cell need quoting or escaping (almost no cell has one),
//! and comparing names without a call to `memcmp`, which costs more than a short name.

use crate::swar::{has_below, has_byte};

/// Whether some byte of `text` is one `byte_hit` looks for, checked a word at a time by
/// `word_hit`; a short tail is checked as the last eight bytes, overlapping the word before.
fn any(text: &[u8], word_hit: impl Fn(u64) -> u64, byte_hit: impl Fn(u8) -> bool) -> bool {
    let word = |bytes: &[u8]| <[u8; 8]>::try_from(bytes).is_ok_and(|w| word_hit(u64::from_le_bytes(w)) != 0);
    if text.len() < 8 {
        return text.iter().any(|&b| byte_hit(b));
    }
    let mut chunks = text.chunks_exact(8);
    if chunks.any(word) {
        return true;
    }
    !chunks.remainder().is_empty() && text.get(text.len() - 8..).is_some_and(word)
}

/// Whether a CSV field must be quoted: it holds a delimiter, a quote or a line break (the
/// csv crate's rule for its `Necessary` style with CRLF records).
pub(crate) fn csv_needs_quotes(text: &str) -> bool {
    any(
        text.as_bytes(),
        |w| has_byte(w, b',') | has_byte(w, b'"') | has_byte(w, b'\r') | has_byte(w, b'\n'),
        |b| matches!(b, b',' | b'"' | b'\r' | b'\n'),
    )
}

/// Whether a JSON string needs escapes: a quote, a backslash or a control character below
/// U+0020 (what serde_json escapes; everything else it copies as is).
pub(crate) fn json_needs_escapes(text: &str) -> bool {
    any(
        text.as_bytes(),
        |w| has_below(w, 0x20) | has_byte(w, b'"') | has_byte(w, b'\\'),
        |b| b < 0x20 || b == b'"' || b == b'\\',
    )
}

/// Whether two byte strings are equal, compared inline a word at a time.
pub(crate) fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |bytes: &[u8]| <[u8; 8]>::try_from(bytes).map(u64::from_ne_bytes).ok();
    if a.len() < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let words_equal = a.chunks_exact(8).zip(b.chunks_exact(8)).all(|(x, y)| word(x) == word(y));
    let tail = a.len() - 8;
    words_equal && word(a.get(tail..).unwrap_or_default()) == word(b.get(tail..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_at_every_position_matches_the_plain_test() {
        for b in 0u8..=127 {
            for len in 1..20 {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = b;
                    let s = std::str::from_utf8(&text).unwrap();
                    assert_eq!(csv_needs_quotes(s), matches!(b, b',' | b'"' | b'\r' | b'\n'), "{b:#x} {len} {at}");
                    assert_eq!(json_needs_escapes(s), b < 0x20 || b == b'"' || b == b'\\', "{b:#x} {len} {at}");
                }
            }
        }
    }

    #[test]
    fn equal_is_byte_equality() {
        let texts =
            ["", "a", "Name", "NAME", "ProcessId", "ProcessIe", "SystemCreationClassName", "SystemCreationClassNamf"];
        for a in texts {
            for b in texts {
                assert_eq!(equal(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
        }
        for len in 1..20 {
            for at in 0..len {
                let a = vec![b'x'; len];
                let mut b = a.clone();
                b[at] = b'y';
                assert!(equal(&a, &a.clone()) && !equal(&a, &b), "{len} {at}");
            }
        }
    }

    #[test]
    fn multibyte_text_and_high_bytes_are_plain() {
        for s in ["", "Zürich ✓ 東京 \u{7f}\u{80}\u{ff}", "ÿÿÿÿÿÿÿÿÿÿ", "\u{10ffff}\u{10ffff}"] {
            assert!(!csv_needs_quotes(s), "{s}");
            assert!(!json_needs_escapes(s), "{s}");
        }
        assert!(csv_needs_quotes("東京東京東京,"));
        assert!(json_needs_escapes("東京東京東京\u{1f}"));
    }
}
