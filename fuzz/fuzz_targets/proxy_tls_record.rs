//! The host proxy's TLS record reader (`host::proxy::record`): the only parser of bytes on
//! the TLS route, fed by any client and by the guest. Reads records until the stream ends
//! or a record is refused, and checks that each record is exactly the announced slice of
//! the input, within the limit, with a header that `parse_header` accepts again.
#![no_main]

use host::proxy::limits::TLS_MAX_RECORD_BYTES;
use host::proxy::record::{parse_header, read_record, ReadRecordError, HEADER_BYTES};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A small limit, to exercise configured limits below TLS's own.
const SMALL_LIMIT: u32 = 64;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("current-thread runtime builds")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        for limit in [TLS_MAX_RECORD_BYTES, SMALL_LIMIT] {
            let mut rest: &[u8] = data;
            loop {
                let before = rest;
                let record = match read_record(&mut rest, limit).await {
                    Ok(record) => record,
                    Err(ReadRecordError::Closed | ReadRecordError::Refused(_)) => break,
                    Err(ReadRecordError::Io(e)) => {
                        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
                        break;
                    }
                };
                let consumed = before.len() - rest.len();
                assert_eq!(consumed, record.bytes.len());
                assert_eq!(&before[..consumed], record.bytes.as_slice());
                assert_eq!(
                    usize::from(record.header.length) + HEADER_BYTES,
                    record.bytes.len()
                );
                assert!(u32::from(record.header.length) <= limit);
                let header: [u8; HEADER_BYTES] = record.bytes[..HEADER_BYTES]
                    .try_into()
                    .expect("five header bytes");
                assert_eq!(parse_header(header, limit), Ok(record.header));
            }
        }
    });
});
