//! Two builds from the same inputs (pinned kernel package, enclave binary, host libraries)
//! are byte-identical, manifest included.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use std::path::Path;

#[test]
fn two_builds_are_byte_identical() {
    let enclave = common::enclave_binary().unwrap_or_else(|e| panic!("{e}"));
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-cache");
    let dir = tempfile::tempdir().unwrap();
    let mut manifests = Vec::new();
    for run in ["a", "b"] {
        let opts = image::BuildOptions {
            enclave: enclave.clone(),
            out: dir.path().join(run),
            cache: cache.clone(),
            kernel_deb: None,
            allow_other_kernel: false,
            cmdline: image::pins::CMDLINE.to_string(),
            strip_debug: true,
        };
        manifests.push(image::build(&opts, &mut |l| eprintln!("image: {l}")).unwrap());
    }
    assert_eq!(manifests[0], manifests[1]);
    for f in ["vmlinuz", "initrd.img", "cmdline", "manifest.json"] {
        let a = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert!(a == b, "{f} differs between two builds");
    }
    let m = &manifests[0];
    assert_eq!(m.kernel_source.deb_sha256, image::pins::KERNEL_DEB_SHA256);
    assert!(m.contents.iter().any(|c| c.path == "/init"));
    assert!(m
        .modules
        .iter()
        .any(|p| p.ends_with("vmw_vsock_virtio_transport.ko")));
    assert!(m
        .contents
        .iter()
        .any(|c| c.path.ends_with("libtss2-tcti-device.so.0")));
    // The manifest's digests are those of the files.
    let initrd = std::fs::read(dir.path().join("a/initrd.img")).unwrap();
    assert_eq!(
        image::manifest::Part::of(Some("initrd.img"), &initrd),
        m.initrd
    );
}
