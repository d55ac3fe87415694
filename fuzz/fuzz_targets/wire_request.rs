//! Request bodies: the enclave's `Request`, the host proxy's `RequestHead` (its allowlist
//! reads only the method name) and the verifier's `VerifierRequest`.
//!
//! Properties: a decoded message re-encodes to a fixed point, and whenever both the proxy's
//! `RequestHead` and the enclave's `Request` accept the same bytes they agree on the method;
//! a disagreement would let a request past the allowlist under another name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use wire::msg::{Request, RequestHead};
use wire::verifier::VerifierRequest;

/// `encode(decode(encode(m))) == encode(m)` for a message that decoded from fuzz input.
fn reencodes<T: Serialize + DeserializeOwned>(msg: &T) {
    let once = wire::encode(msg).expect("a decoded message encodes");
    let again: T = wire::decode(&once).expect("an encoded message decodes");
    let twice = wire::encode(&again).expect("a decoded message encodes");
    assert_eq!(once, twice);
}

fuzz_target!(|data: &[u8]| {
    let head = wire::decode::<RequestHead>(data);
    if let Ok(req) = wire::decode::<Request>(data) {
        reencodes(&req);
        if let Ok(head) = &head {
            assert_eq!(head.method, req.method());
        }
    }
    if let Ok(req) = wire::decode::<VerifierRequest>(data) {
        reencodes(&req);
    }
});
