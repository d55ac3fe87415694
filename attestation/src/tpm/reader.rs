//! A bounds-checked cursor over TPM marshalled bytes (big-endian integers and TPM2B sized
//! buffers, TCG TPM 2.0 Part 1 §18 / Part 2 §5.2). Every read names the field it reads so a
//! truncation error says where the input ended; nothing here can panic.

use super::TpmError;

/// Reads TPM wire types from the front of a byte slice.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Takes exactly `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TpmError> {
        if n > self.rest.len() {
            return Err(TpmError::Truncated { what });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TpmError> {
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| TpmError::Truncated { what })
    }

    /// A `BYTE` / `UINT8`.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, TpmError> {
        self.array::<1>(what).map(u8::from_be_bytes)
    }

    /// A big-endian `UINT16`.
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, TpmError> {
        self.array::<2>(what).map(u16::from_be_bytes)
    }

    /// A big-endian `UINT32`.
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, TpmError> {
        self.array::<4>(what).map(u32::from_be_bytes)
    }

    /// A big-endian `UINT64`.
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, TpmError> {
        self.array::<8>(what).map(u64::from_be_bytes)
    }

    /// A TPM2B: a `UINT16` size, then that many bytes, refused above `max` (the size of the
    /// buffer the structure declares, Part 2 §10.4).
    pub(crate) fn tpm2b(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], TpmError> {
        let size = usize::from(self.u16(what)?);
        if size > max {
            return Err(TpmError::SizeLimit { what, size, max });
        }
        self.take(size, what)
    }

    /// Whether every byte was consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Succeeds only if every byte was consumed.
    pub(crate) fn finish(self, what: &'static str) -> Result<(), TpmError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(TpmError::TrailingBytes {
                what,
                count: self.rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_checks_bounds() {
        let mut r = Reader::new(&[0, 1, 0, 0, 0, 2, 7]);
        assert_eq!(r.u16("a").unwrap(), 1);
        assert_eq!(r.u32("b").unwrap(), 2);
        assert!(matches!(r.u16("c"), Err(TpmError::Truncated { what: "c" })));
        assert!(matches!(
            r.finish("x"),
            Err(TpmError::TrailingBytes { count: 1, .. })
        ));
    }

    #[test]
    fn tpm2b_enforces_its_limit() {
        let mut r = Reader::new(&[0, 3, 1, 2, 3]);
        assert!(matches!(
            r.tpm2b(2, "buf"),
            Err(TpmError::SizeLimit {
                size: 3,
                max: 2,
                ..
            })
        ));
        let mut r = Reader::new(&[0, 3, 1, 2, 3]);
        assert_eq!(r.tpm2b(3, "buf").unwrap(), &[1, 2, 3]);
        r.finish("buf").unwrap();
    }
}
