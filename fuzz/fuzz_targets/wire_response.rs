//! Response bodies: the enclave's `Response` (read by clients and peer kernels), the
//! verifier's `VerifierResponse` (read by the enclave) and the `FeedStatus` inside a signed
//! `status` answer to `watch` (decoded by the enclave once its signature verified). A decoded
//! message re-encodes to a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use wire::msg::Response;
use wire::verifier::{FeedStatus, VerifierResponse};

/// `encode(decode(encode(m))) == encode(m)` for a message that decoded from fuzz input.
fn reencodes<T: Serialize + DeserializeOwned>(msg: &T) {
    let once = wire::encode(msg).expect("a decoded message encodes");
    let again: T = wire::decode(&once).expect("an encoded message decodes");
    let twice = wire::encode(&again).expect("a decoded message encodes");
    assert_eq!(once, twice);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = wire::decode::<Response>(data) {
        reencodes(&resp);
    }
    if let Ok(resp) = wire::decode::<VerifierResponse>(data) {
        reencodes(&resp);
    }
    if let Ok(status) = wire::decode::<FeedStatus>(data) {
        reencodes(&status);
    }
});
