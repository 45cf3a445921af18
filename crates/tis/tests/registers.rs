//! Reset values and access widths of every register.

mod common;

use common::*;
use vtpm_tis::{TisConfig, TisDevice};

fn device() -> TisDevice {
    TisDevice::new(TisConfig {
        backend_buffer: 8192,
        int_vector: 5,
        ..TisConfig::default()
    })
    .unwrap()
}

#[test]
fn every_locality_reads_its_reset_values() {
    let mut d = device();
    for l in 0..5 {
        let p = page(l);
        assert_eq!(
            r8(&mut d, p + ACCESS),
            ACCESS_VALID | ACCESS_ESTABLISHMENT,
            "ACCESS {l}"
        );
        assert_eq!(r32(&mut d, p + ACCESS), 0x81);
        assert_eq!(
            r32(&mut d, p + INT_ENABLE),
            0x0000_0008,
            "low level, all disabled"
        );
        assert_eq!(r32(&mut d, p + INT_VECTOR), 5);
        assert_eq!(r32(&mut d, p + INT_STATUS), 0);
        assert_eq!(r32(&mut d, p + INTF_CAPABILITY), 0x3000_0697);
        assert_eq!(r32(&mut d, p + STS), u32::MAX, "no locality is active");
        assert_eq!(r32(&mut d, p + INTERFACE_ID), 0x0100_3900);
        assert_eq!(r32(&mut d, p + DID_VID), 0x0001_1014);
        assert_eq!(r8(&mut d, p + RID), 0x01);
    }
}

#[test]
fn an_active_idle_locality_reads_sts_with_the_tpm2_family_only() {
    let mut d = device();
    take_locality(&mut d, 2);
    assert_eq!(r32(&mut d, page(2) + STS), FAMILY_TPM2);
    assert_eq!(
        r8(&mut d, page(2) + ACCESS),
        ACCESS_VALID | ACCESS_ACTIVE | ACCESS_ESTABLISHMENT
    );
    d.set_established(true);
    assert_eq!(r8(&mut d, page(2) + ACCESS), ACCESS_VALID | ACCESS_ACTIVE);
}

#[test]
fn byte_and_word_reads_at_any_lane_match_the_dword() {
    let mut d = device();
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    for reg in [
        ACCESS,
        INT_ENABLE,
        INT_VECTOR,
        INTF_CAPABILITY,
        STS,
        INTERFACE_ID,
        DID_VID,
    ] {
        let dword = r32(&mut d, reg).to_le_bytes();
        for lane in 0..4u64 {
            if reg == STS && (lane == 1 || lane == 2) {
                // Byte reads of burstCount are clamped (below).
                continue;
            }
            assert_eq!(
                r8(&mut d, reg + lane),
                dword[lane as usize],
                "{reg:#x}+{lane}"
            );
        }
        for lane in 0..3u64 {
            let mut w = [0u8; 2];
            d.read(reg + lane, &mut w);
            assert_eq!(
                w,
                [dword[lane as usize], dword[lane as usize + 1]],
                "{reg:#x}+{lane}"
            );
        }
    }
    let mut q = [0u8; 8];
    d.read(INT_STATUS, &mut q);
    assert_eq!(u64::from_le_bytes(q), 0x3000_0697u64 << 32);
}

#[test]
fn a_byte_read_of_burst_count_never_shows_more_than_0xff() {
    let mut d = device();
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    assert_eq!(burst(&mut d, 0), 8192);
    assert_eq!(r8(&mut d, STS + 1), 0xFF, "8192 = 0x2000 would read 0x00");
    // Byte reads of both halves together never add up to more than is free.
    assert_eq!(r8(&mut d, STS + 2), 0x00);
    let mut w = [0u8; 2];
    d.read(STS + 1, &mut w);
    assert_eq!(u16::from_le_bytes(w), 8192);
}

#[test]
fn reserved_space_and_odd_widths_read_all_ones_and_ignore_writes() {
    let mut d = device();
    take_locality(&mut d, 0);
    for off in [0x04u64, 0x1C, 0x28, 0x2C, 0x34, 0x40, 0xC0, 0xF08, 0xFFC] {
        assert_eq!(r32(&mut d, off), u32::MAX, "{off:#x}");
        assert!(w32(&mut d, off, 0).is_none());
    }
    let mut three = [0u8; 3];
    d.read(INTF_CAPABILITY, &mut three);
    assert_eq!(three, [0xFF; 3]);
    let mut across = [0u8; 4];
    d.read(0xFFE, &mut across);
    assert_eq!(across, [0xFF; 4], "an access across a page boundary");
}

#[test]
fn configured_localities_bound_the_pages_and_cap_locality() {
    let mut d = TisDevice::new(TisConfig {
        localities: 3,
        ..TisConfig::default()
    })
    .unwrap();
    assert_eq!(
        r32(&mut d, INTERFACE_ID) & 0x100,
        0,
        "CapLocality needs five"
    );
    assert_eq!(r8(&mut d, page(2) + ACCESS), 0x81);
    assert_eq!(r8(&mut d, page(3) + ACCESS), 0xFF, "no page for locality 3");
    assert!(w8(&mut d, page(3) + ACCESS, ACCESS_REQUEST_USE).is_none());
    assert_eq!(d.active_locality(), None);
}

#[test]
fn int_vector_is_wired_and_the_interface_selector_locks() {
    let mut d = device();
    take_locality(&mut d, 0);
    w8(&mut d, INT_VECTOR, 9);
    assert_eq!(r8(&mut d, INT_VECTOR), 5);
    w32(&mut d, INTERFACE_ID, 1 << 19);
    for l in 0..5 {
        assert_eq!(r32(&mut d, page(l) + INTERFACE_ID) & (1 << 19), 1 << 19);
    }
}

#[test]
fn int_enable_keeps_only_its_writable_bits_and_only_from_the_active_locality() {
    let mut d = device();
    take_locality(&mut d, 1);
    w32(&mut d, page(0) + INT_ENABLE, 0x8000_0087);
    assert_eq!(
        r32(&mut d, page(0) + INT_ENABLE),
        0x08,
        "locality 0 is not active"
    );
    w32(&mut d, page(1) + INT_ENABLE, u32::MAX);
    assert_eq!(r32(&mut d, page(1) + INT_ENABLE), 0x8000_009F);
    w8(&mut d, page(1) + INT_ENABLE + 3, 0);
    assert_eq!(
        r32(&mut d, page(1) + INT_ENABLE),
        0x9F,
        "a byte write touches one lane"
    );
}
