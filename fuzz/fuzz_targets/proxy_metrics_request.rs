//! The host proxy's Prometheus endpoint request parser (`host::proxy::prometheus`): any
//! client that can reach the metrics address sends these bytes. Checks that parsing never
//! panics, that a verdict depends only on the head (bytes after the blank line do not
//! change it), and that nothing beyond the head limit is ever accepted.
#![no_main]

use host::proxy::prometheus::{parse_request_head, HeadError, MAX_HEAD_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let verdict = parse_request_head(data);
    if let Ok(_) | Err(HeadError::Malformed) = verdict {
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"\r\n\r\ntrailing body bytes");
        assert_eq!(parse_request_head(&longer), verdict);
    }
    if verdict == Err(HeadError::Incomplete) {
        assert!(data.len() < MAX_HEAD_BYTES);
    }
});
