//! The wire protocol shared by clients, the host proxy, the enclave and the verifier.
//!
//! Every message is one *frame*: a 4-byte big-endian length followed by that many bytes of
//! CBOR (RFC 8949). The length is checked against [`MAX_FRAME_BYTES`] before a single body
//! byte is read, so a peer cannot make a reader allocate more than that. Bodies decode into
//! the typed messages of [`msg`] (enclave API) and [`verifier`] (verifier / key broker API);
//! nothing downstream looks at raw bytes again.
//!
//! This crate exists so that `host` can forward and filter traffic without depending on the
//! enclave: the proxy only needs [`frame`] and [`msg::RequestHead`].
#![forbid(unsafe_code)]

pub mod codec;
pub mod frame;
pub mod hybrid;
pub mod msg;
pub mod verifier;
pub mod xpid;

pub use codec::{decode, encode, CodecError};
pub use frame::{read_frame, write_frame, FrameError, MAX_FRAME_BYTES};
