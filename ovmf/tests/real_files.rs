//! Real firmware: Debian's `ovmf` package (installed by `cargo xtask test`; missing files fail
//! the test) and the edk2-stable202405 suffixes from `sev-snp-measure`'s tests. Truncated and
//! bit-flipped copies must give typed errors or a consistent parse, never a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use ovmf::{Ovmf, OvmfError, SevSectionKind, TdvfSectionKind};

const DEBIAN_OVMF: &str = "/usr/share/ovmf/OVMF.fd";
const DEBIAN_CODE_4M: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";

fn debian(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e}: install Debian's `ovmf` package (`cargo xtask test` does)")
    })
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn debian_ovmf_fd_carries_sev_and_tdx_metadata() {
    let o = Ovmf::parse(debian(DEBIAN_OVMF)).unwrap();
    assert_eq!(o.bytes().len(), 2 << 20);
    assert_eq!(o.gpa(), 0xffe0_0000);
    assert_eq!(o.footer().unwrap().entries.len(), 5);
    assert_eq!(o.sev_es_reset().unwrap().eip, 0x0080_b004);
    let sev = o.sev_metadata().unwrap();
    let kinds: Vec<_> = sev.sections.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SevSectionKind::SnpSecMem,
            SevSectionKind::SnpSecMem,
            SevSectionKind::SnpSecrets,
            SevSectionKind::Cpuid,
            SevSectionKind::SnpSecMem
        ]
    );
    assert!(!o.supports_snp_kernel_hashes());
    assert!(
        !o.supports_sev_hashes(),
        "bookworm's build has a zero hashes-table gpa"
    );
    let tdvf = o.tdvf().unwrap();
    assert_eq!(tdvf.sections.len(), 6);
    let bfv = &tdvf.sections[0];
    assert_eq!(bfv.kind, TdvfSectionKind::Bfv);
    assert!(bfv.mr_extend());
    assert_eq!(bfv.memory_address + bfv.memory_data_size, 1 << 32);
    assert_eq!(bfv.raw_data(o.bytes(), 0).unwrap().len(), 0x1e_0000);
    assert!(tdvf.sections[1..].iter().all(|s| !s.mr_extend()));
}

#[test]
fn debian_4m_code_build_has_no_sev_or_tdx_metadata() {
    // bookworm's 2022.11 `_4M` build keeps the reset-vector entries but no metadata.
    let o = Ovmf::parse(debian(DEBIAN_CODE_4M)).unwrap();
    assert!(o.footer().is_some());
    assert!(o.sev_metadata().is_none() && o.tdvf().is_none());
    assert!(!o.supports_snp_kernel_hashes());
}

#[test]
fn amdsev_suffix_has_the_kernel_hashes_section() {
    let o = Ovmf::parse(fixture("ovmf_AmdSev_suffix.bin")).unwrap();
    assert!(o.supports_snp_kernel_hashes());
    assert!(o.supports_sev_hashes());
    assert_eq!(o.sev_hashes_table().unwrap().gpa, 0x0081_0c00);
    let hashes = o
        .sev_metadata()
        .unwrap()
        .section(SevSectionKind::SnpKernelHashes)
        .unwrap();
    assert_eq!((hashes.gpa, hashes.size), (0x0081_0000, 0x1000));
    // Its TDVF sections point before the 4 KiB suffix: refused when read, not at parse.
    let tdvf = o.tdvf().unwrap();
    assert!(matches!(
        tdvf.sections[0].raw_data(o.bytes(), 0),
        Err(OvmfError::TdvfSection { index: 0, .. })
    ));
    let x64 = Ovmf::parse(fixture("ovmf_OvmfX64_suffix.bin")).unwrap();
    assert!(!x64.supports_snp_kernel_hashes());
}

/// Re-parsing must never panic; it either succeeds or names a check.
fn parse_is_total(bytes: Vec<u8>) -> Result<Ovmf, OvmfError> {
    let r = Ovmf::parse(bytes);
    if let Err(e) = &r {
        assert!(!e.to_string().is_empty());
    }
    r
}

#[test]
fn truncated_images_give_typed_errors() {
    let img = fixture("ovmf_AmdSev_suffix.bin");
    let mut errors = 0;
    for cut in 0..img.len() {
        // Dropping the front moves every structure the footer points at out of the image.
        if parse_is_total(img[cut..].to_vec()).is_err() {
            errors += 1;
        }
        // Dropping the back loses the footer: a valid image without metadata.
        let tail = parse_is_total(img[..cut].to_vec()).unwrap();
        assert!(tail.footer().is_none() || cut == img.len());
    }
    assert!(errors > 1000, "only {errors} front cuts were refused");
    let cut = Ovmf::parse(img[3000..].to_vec()).unwrap_err();
    assert!(
        matches!(
            cut,
            OvmfError::MetadataOffset {
                what: "sev metadata",
                ..
            }
        ),
        "{cut:?}"
    );
    let full = debian(DEBIAN_OVMF);
    let half = Ovmf::parse(full[full.len() - 2000..].to_vec()).unwrap_err();
    assert!(matches!(half, OvmfError::MetadataOffset { .. }), "{half:?}");
}

#[test]
fn bit_flips_in_the_metadata_give_typed_errors_or_a_consistent_parse() {
    let img = fixture("ovmf_AmdSev_suffix.bin");
    let reference = Ovmf::parse(img.clone()).unwrap();
    let start = reference.tdvf().unwrap().offset;
    let (mut refused, mut accepted) = (0, 0);
    for byte in start..img.len() {
        for bit in 0..8 {
            let mut m = img.clone();
            m[byte] ^= 1 << bit;
            match parse_is_total(m) {
                Ok(_) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
    }
    assert!(
        refused > 100 && accepted > 100,
        "refused {refused}, accepted {accepted}"
    );

    let sev_at = reference.sev_metadata().unwrap().offset;
    let flip = |at: usize| {
        let mut m = img.clone();
        m[at] ^= 0x01;
        Ovmf::parse(m)
    };
    assert!(matches!(flip(sev_at), Err(OvmfError::SevSignature { .. })));
    assert!(matches!(
        flip(sev_at + 8),
        Err(OvmfError::SevVersion { version: 0 })
    ));
    assert!(matches!(flip(start), Err(OvmfError::TdvfSignature { .. })));
    assert!(matches!(
        flip(start + 12),
        Err(OvmfError::TdvfLength { .. }) | Err(OvmfError::TdvfSection { .. })
    ));
    // The first GUID byte of the footer entry: no footer, so no metadata at all.
    let footer = flip(img.len() - 32 - 16).unwrap();
    assert!(footer.footer().is_none());
    // The reset block's length field (data starts 4 bytes before its trailer).
    let reset = reference.footer().unwrap().entries[0].clone();
    let r = flip(reset.data_offset + reset.data_len).unwrap_err();
    assert!(
        matches!(
            r,
            OvmfError::EntrySize { .. } | OvmfError::EntryTooShort { .. }
        ),
        "{r:?}"
    );
}

#[test]
fn oversized_images_are_refused_before_parsing() {
    let e = Ovmf::parse(vec![0u8; ovmf::defs::MAX_FIRMWARE_BYTES + 1]).unwrap_err();
    assert!(matches!(e, OvmfError::TooLarge { .. }));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_tail_after_a_real_footer_parses_or_fails_cleanly(
            noise in proptest::collection::vec(any::<u8>(), 0..2048),
            keep in 0usize..4096,
        ) {
            let img = fixture("ovmf_AmdSev_suffix.bin");
            let mut m = noise;
            m.extend_from_slice(&img[keep..]);
            let _ = parse_is_total(m);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_is_total(bytes);
        }
    }
}
