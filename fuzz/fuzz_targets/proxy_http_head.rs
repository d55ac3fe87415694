//! The host proxy's OTLP/HTTP carry (`host::proxy::http::parse_head`): the only parser of the
//! bytes a guest sends to the OTLP collector route and of the collector's answers. Any head
//! is parsed as a request and as a response under a large and a small body limit; an
//! accepted head never declares a body over the limit, and an accepted request names an
//! OTLP export path.
#![no_main]

use host::proxy::http::parse_head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limit in [1 << 20, 16] {
        if let Ok(h) = parse_head(data, true, limit) {
            assert!(h.content_length <= limit);
            assert!(h.first_line.starts_with("POST /v1/"));
        }
        if let Ok(h) = parse_head(data, false, limit) {
            assert!(h.content_length <= limit);
        }
    }
});
