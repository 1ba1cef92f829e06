//! NDR 2.0 (C706 chapter 14) as DCOM stubs use it: little-endian, natural alignment counted
//! from the start of the stub, unique pointers as referent ids, conformant varying strings.
//!
//! Callers lay out pointees themselves, in NDR order: a top-level pointer's pointee right after
//! it, an embedded pointer's after the structure that holds it. Unique pointers get a fresh
//! referent id each (full pointers, which alias, are not needed by the calls we make).

use super::DecodeError;
use super::cursor::Cursor;

/// First referent id we hand out; any non-zero value is valid, this one is what Windows uses.
const FIRST_REFERENT: u32 = 0x0002_0000;

/// Builds an NDR stub.
#[derive(Debug, Clone)]
pub struct NdrWriter {
    buf: Vec<u8>,
    next_referent: u32,
}

impl Default for NdrWriter {
    fn default() -> Self {
        NdrWriter::new()
    }
}

impl NdrWriter {
    pub fn new() -> NdrWriter {
        NdrWriter { buf: Vec::new(), next_referent: FIRST_REFERENT }
    }

    /// Pads with zeros to a multiple of `n` from the start of the stub.
    pub fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    pub fn u16(&mut self, v: u16) {
        self.align(2);
        self.buf.extend(v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend(v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend(v.to_le_bytes());
    }

    /// A GUID: a u32, two u16 and 8 bytes, so 4-byte aligned; `g` is in wire order.
    pub fn guid(&mut self, g: &[u8; 16]) {
        self.align(4);
        self.buf.extend(g);
    }

    /// A unique pointer: a fresh referent id, or 0 for NULL. Returns whether a pointee follows.
    pub fn pointer(&mut self, present: bool) -> bool {
        if present {
            let id = self.fresh_referent();
            self.u32(id);
        } else {
            self.u32(0);
        }
        present
    }

    fn fresh_referent(&mut self) -> u32 {
        let id = self.next_referent;
        self.next_referent = self.next_referent.wrapping_add(4);
        id
    }

    /// A `[string] wchar_t*` pointee: max count, offset 0, actual count, UTF-16 with its NUL.
    pub fn conformant_varying_wstr(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain([0]).collect();
        let n = units.len() as u32;
        self.u32(n);
        self.u32(0);
        self.u32(n);
        self.units(&units);
    }

    /// A BSTR pointee (`FLAGGED_WORD_BLOB`, MS-OAUT 2.2.23.2): max count, byte count, element
    /// count, then the UTF-16 text with a NUL, as Windows accepts from DCOM clients.
    pub fn flagged_word_blob(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().chain([0]).collect();
        let n = units.len() as u32;
        self.u32(n);
        self.u32(n.saturating_mul(2));
        self.u32(n);
        self.units(&units);
    }

    /// Bytes as they are (an array of octets needs no alignment).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
    }

    fn units(&mut self, units: &[u16]) {
        for u in units {
            self.buf.extend(u.to_le_bytes());
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads an NDR stub.
#[derive(Debug, Clone)]
pub struct NdrReader<'a> {
    c: Cursor<'a>,
}

impl<'a> NdrReader<'a> {
    pub fn new(stub: &'a [u8]) -> NdrReader<'a> {
        NdrReader { c: Cursor::new(stub) }
    }

    pub fn align(&mut self, n: usize) -> Result<(), DecodeError> {
        let pad = (n - self.c.offset() % n) % n;
        self.c.skip(pad, "NDR alignment padding")
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.align(2)?;
        self.c.u16(what)
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.align(4)?;
        self.c.u32(what)
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.align(8)?;
        self.c.u64(what)
    }

    pub fn guid(&mut self, what: &'static str) -> Result<[u8; 16], DecodeError> {
        self.align(4)?;
        self.c.guid(what)
    }

    /// A unique pointer: whether its pointee follows (a non-zero referent id).
    pub fn pointer(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.u32(what)? != 0)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.c.remaining()
    }

    /// The underlying cursor, for structures read packed (no alignment inside).
    pub(crate) fn cursor(&mut self) -> &mut Cursor<'a> {
        &mut self.c
    }

    /// The next `n` raw bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.c.bytes(n, what)
    }

    /// A `[string] wchar_t*` pointee; the offset must be 0 and the actual count fit the maximum.
    pub fn conformant_varying_wstr(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let offset = self.c.offset();
        let max = self.u32(what)?;
        let first = self.u32(what)?;
        let actual = self.u32(what)?;
        if first != 0 || actual > max {
            return Err(DecodeError::invalid(what, offset, format!("offset {first}, {actual} of {max} elements")));
        }
        self.wstr(actual as usize, what)
    }

    /// A BSTR pointee (`FLAGGED_WORD_BLOB`).
    pub fn flagged_word_blob(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let offset = self.c.offset();
        let max = self.u32(what)?;
        self.u32(what)?;
        let count = self.u32(what)?;
        if count != max {
            return Err(DecodeError::invalid(what, offset, format!("{count} elements, conformance {max}")));
        }
        self.wstr(count as usize, what)
    }

    /// `n` UTF-16 units, a trailing NUL dropped.
    fn wstr(&mut self, n: usize, what: &'static str) -> Result<String, DecodeError> {
        let raw = self.c.bytes(n.saturating_mul(2), what)?;
        let mut units: Vec<u16> =
            raw.chunks_exact(2).map(|p| if let [a, b] = *p { u16::from_le_bytes([a, b]) } else { 0 }).collect();
        if units.last() == Some(&0) {
            units.pop();
        }
        Ok(String::from_utf16_lossy(&units))
    }

    /// Fails unless the whole stub was read (trailing alignment padding allowed).
    pub fn finish(mut self, what: &'static str) -> Result<(), DecodeError> {
        let offset = self.c.offset();
        let rest = self.c.rest();
        if rest.remaining() < 8 {
            Ok(())
        } else {
            Err(DecodeError::invalid(what, offset, format!("{} bytes left over", rest.remaining())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_from_the_stub_start() {
        let mut w = NdrWriter::new();
        w.u16(1);
        w.u32(2);
        w.u64(3);
        let b = w.into_bytes();
        assert_eq!(b.len(), 16);
        let mut r = NdrReader::new(&b);
        assert_eq!((r.u16("a").unwrap(), r.u32("b").unwrap(), r.u64("c").unwrap()), (1, 2, 3));
    }

    #[test]
    fn strings_round_trip_and_pointers_get_distinct_ids() {
        let mut w = NdrWriter::new();
        assert!(w.pointer(true));
        w.conformant_varying_wstr("ré");
        w.pointer(true);
        w.flagged_word_blob("WQL");
        w.pointer(false);
        let b = w.into_bytes();
        let mut r = NdrReader::new(&b);
        let first = r.clone().u32("id").unwrap();
        assert!(r.pointer("p").unwrap());
        assert_eq!(r.conformant_varying_wstr("s").unwrap(), "ré");
        let second = r.clone().u32("id").unwrap();
        assert_ne!(first, second);
        assert!(r.pointer("p").unwrap());
        assert_eq!(r.flagged_word_blob("b").unwrap(), "WQL");
        assert!(!r.pointer("p").unwrap());
        r.finish("stub").unwrap();
    }

    #[test]
    fn lying_counts_are_errors() {
        let mut w = NdrWriter::new();
        w.u32(2);
        w.u32(0);
        w.u32(3);
        assert!(NdrReader::new(&w.into_bytes()).conformant_varying_wstr("s").is_err());
        let mut w = NdrWriter::new();
        w.u32(u32::MAX);
        w.u32(0);
        w.u32(u32::MAX);
        assert!(matches!(NdrReader::new(&w.into_bytes()).flagged_word_blob("s"), Err(DecodeError::Truncated { .. })));
    }
}
