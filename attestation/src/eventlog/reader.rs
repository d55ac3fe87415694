//! A bounds-checked cursor over little-endian event-log bytes (PFP §10.2: UEFI structures are
//! little-endian). Every read names the field it reads and the offset it failed at; nothing
//! here can panic.

use super::EventLogError;

/// Reads event-log fields from the front of a byte slice.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            offset: 0,
        }
    }

    /// Offset of the next byte from the start of the input.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Takes exactly `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], EventLogError> {
        if n > self.rest.len() {
            return Err(EventLogError::Truncated {
                what,
                offset: self.offset,
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        self.offset = self.offset.saturating_add(n);
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], EventLogError> {
        let offset = self.offset;
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| EventLogError::Truncated { what, offset })
    }

    /// A `UINT8`.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, EventLogError> {
        self.array::<1>(what).map(u8::from_le_bytes)
    }

    /// A little-endian `UINT16`.
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, EventLogError> {
        self.array::<2>(what).map(u16::from_le_bytes)
    }

    /// A little-endian `UINT32`.
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, EventLogError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    /// A little-endian `UINT64`.
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, EventLogError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// A `UINT32` size followed by that many bytes. The size is checked against the bytes that
    /// remain before anything is allocated.
    pub(crate) fn sized(
        &mut self,
        what: &'static str,
        event: Option<usize>,
    ) -> Result<&'a [u8], EventLogError> {
        let declared = self.u32(what)?;
        let remaining = self.rest.len();
        match usize::try_from(declared) {
            Ok(size) if size <= remaining => self.take(size, what),
            _ => Err(EventLogError::SizeExceedsLog {
                what,
                event,
                size: declared,
                remaining,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_checks_bounds() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 7]);
        assert_eq!(r.u16("a").unwrap(), 1);
        assert_eq!(r.u32("b").unwrap(), 2);
        assert_eq!(r.offset(), 6);
        assert!(matches!(
            r.u16("c"),
            Err(EventLogError::Truncated {
                what: "c",
                offset: 6
            })
        ));
        assert_eq!(r.rest(), &[7]);
    }

    #[test]
    fn sized_refuses_a_size_beyond_the_input() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            r.sized("data", Some(3)),
            Err(EventLogError::SizeExceedsLog {
                size: u32::MAX,
                remaining: 2,
                event: Some(3),
                ..
            })
        ));
        let mut r = Reader::new(&[2, 0, 0, 0, 1, 2, 3]);
        assert_eq!(r.sized("data", None).unwrap(), &[1, 2]);
    }
}
