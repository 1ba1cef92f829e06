//! A bounds-checked little-endian reader over a byte slice.
//!
//! Every read names what it reads, so a malformed packet fails with the field and the absolute
//! offset where it went wrong instead of a panic.

use super::DecodeError;

/// Reads little-endian fields from a slice; offsets in errors are relative to the outermost buffer.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the outermost buffer, for error messages.
    base: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0, base: 0 }
    }

    /// Absolute offset of the current position.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(DecodeError::Truncated {
            what,
            offset: self.offset(),
            need: n,
            have: self.remaining(),
        })?;
        let out = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    /// Takes the next `n` bytes as a cursor of their own (offsets stay absolute).
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<Cursor<'a>, DecodeError> {
        let base = self.offset();
        Ok(Cursor { buf: self.bytes(n, what)?, pos: 0, base })
    }

    /// Everything not yet read, as a cursor of its own.
    pub(crate) fn rest(&mut self) -> Cursor<'a> {
        let n = self.remaining();
        self.take(n, "rest").unwrap_or_else(|_| Cursor::new(&[]))
    }

    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        self.bytes(n, what).map(|_| ())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn guid(&mut self, what: &'static str) -> Result<[u8; 16], DecodeError> {
        self.array(what)
    }

    /// Reads a u32 length and takes that many bytes counted from the start of the length field
    /// itself, as MS-WMIO's `EncodingLength` fields do.
    pub(crate) fn self_sized(&mut self, what: &'static str) -> Result<Cursor<'a>, DecodeError> {
        let offset = self.offset();
        let len = self.clone().u32(what)? as usize;
        if len < 4 {
            return Err(DecodeError::invalid(what, offset, format!("length {len} is shorter than its own field")));
        }
        let mut part = self.take(len, what)?;
        part.skip(4, what)?;
        Ok(part)
    }

    /// A cursor over `buf[at..]` of this cursor's slice, for following heap references.
    pub(crate) fn at(&self, at: usize, what: &'static str) -> Result<Cursor<'a>, DecodeError> {
        match self.buf.get(at..) {
            Some(buf) => Ok(Cursor { buf, pos: 0, base: self.base + at }),
            None => Err(DecodeError::invalid(
                what,
                self.base,
                format!("reference {at} is outside a block of {} bytes", self.buf.len()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_offsets() {
        let data = [1u8, 2, 0, 3, 0, 0, 0, 9];
        let mut c = Cursor::new(&data);
        assert_eq!(c.u8("a").unwrap(), 1);
        assert_eq!(c.u16("b").unwrap(), 2);
        let mut sub = c.take(4, "sub").unwrap();
        assert_eq!(sub.u32("c").unwrap(), 3);
        let err = sub.u8("d").unwrap_err();
        assert_eq!(err, DecodeError::Truncated { what: "d", offset: 7, need: 1, have: 0 });
        assert_eq!(c.u8("e").unwrap(), 9);
        assert!(c.u8("f").is_err());
    }

    #[test]
    fn self_sized_counts_its_own_field() {
        let data = [6u8, 0, 0, 0, 0xaa, 0xbb, 0xcc];
        let mut c = Cursor::new(&data);
        let mut part = c.self_sized("len").unwrap();
        assert_eq!(part.u16("x").unwrap(), 0xbbaa);
        assert!(part.is_empty());
        assert_eq!(c.u8("tail").unwrap(), 0xcc);
        assert!(Cursor::new(&[2, 0, 0, 0]).self_sized("len").is_err());
        assert!(Cursor::new(&[9, 0, 0, 0]).self_sized("len").is_err());
    }

    #[test]
    fn at_rejects_out_of_range() {
        let data = [0u8; 4];
        let c = Cursor::new(&data);
        assert!(c.at(4, "r").unwrap().is_empty());
        assert!(c.at(5, "r").is_err());
    }
}
