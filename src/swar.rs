//! Byte tests on a 64-bit word (eight bytes at a time), for scanning short texts where a
//! vector search costs more to set up than it saves: the response reader's text and the
//! writer's cells.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit set in each byte of `word` that equals `byte`, read as a little-endian word:
/// the lowest flag is exact, higher ones may be false (a borrow from the flagged byte), so
/// callers use only "any" or the lowest.
#[inline(always)]
pub(crate) fn has_byte(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Like [`has_byte`], for bytes below `limit` (at most 0x80).
#[inline(always)]
pub(crate) fn has_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS
}
