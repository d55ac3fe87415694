//! `wire::read_frame` over a byte stream: the first parser every peer byte meets (host proxy,
//! enclave and verifier all read frames). Reads frames until the stream errors and checks
//! that each body is exactly the announced slice of the input and writes back to the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use wire::frame::{read_frame_limited, HEADER_BYTES};
use wire::{read_frame, write_frame, FrameError, MAX_FRAME_BYTES};

/// A small limit, to exercise the per-call limit below `MAX_FRAME_BYTES`.
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
        let mut rest: &[u8] = data;
        loop {
            let before = rest;
            let body = match read_frame(&mut rest).await {
                Ok(body) => body,
                Err(FrameError::Io(e)) => panic!("reading from a slice cannot fail: {e}"),
                Err(_) => break,
            };
            assert!(!body.is_empty());
            assert!(body.len() <= MAX_FRAME_BYTES as usize);
            let consumed = before.len() - rest.len();
            assert_eq!(consumed, HEADER_BYTES + body.len());
            assert_eq!(&before[HEADER_BYTES..consumed], body.as_slice());

            let mut written = Vec::new();
            write_frame(&mut written, &body)
                .await
                .expect("a body read_frame accepted is writable");
            assert_eq!(written.as_slice(), &before[..consumed]);
        }

        let mut small: &[u8] = data;
        if let Ok(body) = read_frame_limited(&mut small, SMALL_LIMIT).await {
            assert!(body.len() <= SMALL_LIMIT as usize);
        }
    });
});
