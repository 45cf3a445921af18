//! Reset values, access widths and byte lanes of every CRB register.

mod common;
use common::*;
use vtpm_crb::{ChunkPolicy, CrbConfig, CrbDevice};

fn device() -> CrbDevice {
    CrbDevice::new(CrbConfig::default()).unwrap()
}

/// Reads `size` bytes at `off` and returns them as a little-endian number.
fn read_n(d: &mut CrbDevice, off: u64, size: usize) -> u64 {
    let mut b = [0u8; 8];
    d.read(off, &mut b[..size]);
    u64::from_le_bytes(b)
}

#[test]
fn reset_values_of_every_register() {
    let mut d = device();
    for l in 0..5u64 {
        let p = l * 0x1000;
        assert_eq!(
            r32(&mut d, p + LOC_STATE),
            0x81,
            "LOC_STATE: valid, not established, none assigned"
        );
        assert_eq!(r32(&mut d, p + LOC_CTRL), 0, "LOC_CTRL is write-only");
        assert_eq!(r32(&mut d, p + LOC_STS), 0);
        assert_eq!(
            r32(&mut d, p + INTF_ID),
            0x0002_5D11,
            "CRB, CapLocality, CapCRBChunk (4096 > 3968)"
        );
        assert_eq!(r32(&mut d, p + INTF_ID_HI), 0x0000_1014);
        assert_eq!(read_n(&mut d, p + CTRL_EXT, 8), 0);
        assert_eq!(r32(&mut d, p + CTRL_REQ), 0);
        assert_eq!(r32(&mut d, p + CTRL_STS), 0x2, "tpmIdle");
        assert_eq!(r32(&mut d, p + CTRL_CANCEL), 0);
        assert_eq!(r32(&mut d, p + CTRL_START), 0);
        assert_eq!(r32(&mut d, p + INT_ENABLE), 0);
        assert_eq!(r32(&mut d, p + INT_STS), 0);
        assert_eq!(r32(&mut d, p + CMD_SIZE), 3968);
        assert_eq!(
            r32(&mut d, p + CMD_LADDR),
            0xFED4_0080 + (l as u32) * 0x1000
        );
        assert_eq!(r32(&mut d, p + CMD_HADDR), 0);
        assert_eq!(r32(&mut d, p + RSP_SIZE), 3968);
        assert_eq!(read_n(&mut d, p + RSP_ADDR, 8), 0xFED4_0080 + l * 0x1000);
        for reserved in [0x04, 0x10, 0x20, 0x2C, 0x70, 0x7C] {
            assert_eq!(r32(&mut d, p + reserved), 0, "reserved {reserved:#x}");
        }
        // Past a 3968-byte window nothing remains of the page; a smaller
        // window leaves reserved space, tested below.
    }
}

#[test]
fn intf_id_follows_the_configuration() {
    let cases = [
        (ChunkPolicy::Auto, 4096, 5, 0x0002_5D11),
        (ChunkPolicy::Auto, 3968, 5, 0x0002_5911),
        (ChunkPolicy::Off, 8192, 5, 0x0002_5911),
        (ChunkPolicy::On, 3968, 1, 0x0002_5C11),
        (ChunkPolicy::Off, 4096, 1, 0x0002_5811),
    ];
    for (chunking, backend_buffer, localities, want) in cases {
        let mut d = CrbDevice::new(CrbConfig {
            chunking,
            backend_buffer,
            localities,
            revision: 0,
            ..CrbConfig::default()
        })
        .unwrap();
        assert_eq!(
            r32(&mut d, INTF_ID),
            want,
            "{chunking:?} {backend_buffer} {localities}"
        );
    }
    let mut d = CrbDevice::new(CrbConfig {
        vendor_id: 0x1AF4,
        device_id: 0x0042,
        revision: 7,
        ..CrbConfig::default()
    })
    .unwrap();
    assert_eq!(r32(&mut d, INTF_ID) >> 24, 7);
    assert_eq!(r32(&mut d, INTF_ID_HI), 0x0042_1AF4);
}

#[test]
fn every_width_and_lane_reads_the_same_bytes() {
    let mut d = device();
    take_locality(&mut d, 2);
    let p = 0x2000;
    d.write(p + CTRL_EXT, &0x1122_3344_5566_7788u64.to_le_bytes());
    w32(&mut d, p + INT_ENABLE, 0x8000_000F);
    let regs = [
        LOC_STATE,
        LOC_STS,
        INTF_ID,
        INTF_ID_HI,
        CTRL_EXT,
        CTRL_EXT + 4,
        CTRL_STS,
        INT_ENABLE,
        CMD_SIZE,
        CMD_LADDR,
        RSP_SIZE,
        RSP_ADDR,
        RSP_ADDR + 4,
    ];
    for r in regs {
        let whole = r32(&mut d, p + r).to_le_bytes();
        for lane in 0..4 {
            assert_eq!(
                read_n(&mut d, p + r + lane, 1) as u8,
                whole[lane as usize],
                "byte {r:#x}+{lane}"
            );
        }
        for lane in 0..3 {
            let want = u16::from_le_bytes([whole[lane], whole[lane + 1]]);
            assert_eq!(
                read_n(&mut d, p + r + lane as u64, 2) as u16,
                want,
                "word {r:#x}+{lane}"
            );
        }
    }
    assert_eq!(read_n(&mut d, p + CTRL_EXT, 8), 0x1122_3344_5566_7788);
    assert_eq!(read_n(&mut d, p + CTRL_EXT + 4, 4), 0x1122_3344);
    assert_eq!(read_n(&mut d, p + RSP_ADDR, 8), 0xFED4_2080);
    assert_eq!(read_n(&mut d, p + CMD_LADDR, 8), 0xFED4_2080);
    // An unaligned access across two registers reads both halves.
    // (INT_STS holds localityChange from the grant above.)
    assert_eq!(read_n(&mut d, p + INT_ENABLE + 2, 4), 0x0008_8000);
}

#[test]
fn narrow_writes_hit_only_their_bytes() {
    let mut d = device();
    take_locality(&mut d, 0);
    d.write(CTRL_EXT + 5, &[0xAB]);
    assert_eq!(read_n(&mut d, CTRL_EXT, 8), 0x0000_AB00_0000_0000);
    d.write(CTRL_EXT, &0xFFFFu16.to_le_bytes());
    assert_eq!(read_n(&mut d, CTRL_EXT, 8), 0x0000_AB00_0000_FFFF);
    // INT_ENABLE keeps only its defined bits.
    d.write(INT_ENABLE + 3, &[0xFF]);
    assert_eq!(r32(&mut d, INT_ENABLE), 0x8000_0000);
    d.write(INT_ENABLE, &[0xFF]);
    assert_eq!(r32(&mut d, INT_ENABLE), 0x8000_000F);
    // A byte write of Start in lane 0 starts a command.
    window_write(&mut d, 0, &command(12, 0));
    assert!(d.write(CTRL_START, &[1]).is_some());
    assert_eq!(read_n(&mut d, CTRL_START, 1), 1);
    // A write to the upper lanes of START does not start another.
    assert!(d.write(CTRL_START + 1, &[1]).is_none());
}

#[test]
fn reserved_and_read_only_space_ignores_writes() {
    let mut d = CrbDevice::new(CrbConfig {
        window_size: 256,
        ..CrbConfig::default()
    })
    .unwrap();
    take_locality(&mut d, 0);
    let before: Vec<u32> = (0..0x80).step_by(4).map(|o| r32(&mut d, o)).collect();
    for off in [
        0x04u64, 0x10, 0x30, 0x34, 0x44, 0x58, 0x5C, 0x60, 0x64, 0x68, 0x6C, 0x70, 0x7C,
    ] {
        assert!(w32(&mut d, off, 0xFFFF_FFFF).is_none());
    }
    let after: Vec<u32> = (0..0x80).step_by(4).map(|o| r32(&mut d, o)).collect();
    assert_eq!(before, after);
    // Past the 256-byte window the page is reserved.
    d.write(WINDOW + 256, &[0xAA; 4]);
    assert_eq!(r32(&mut d, WINDOW + 256), 0);
    // Odd sizes on registers are not register accesses.
    let mut three = [0xEEu8; 3];
    d.read(INTF_ID, &mut three);
    assert_eq!(three, [0, 0, 0]);
    // Pages past the configured localities read 0.
    let mut one = CrbDevice::new(CrbConfig {
        localities: 1,
        ..CrbConfig::default()
    })
    .unwrap();
    assert_eq!(r32(&mut one, 0x1000 + INTF_ID), 0);
    assert_eq!(r32(&mut one, 0x5000), 0, "beyond the fifth page");
    assert_eq!(r32(&mut one, 0xFFE), 0, "across a page boundary");
}

#[test]
fn int_sts_is_write_one_to_clear() {
    let mut d = device();
    w32(&mut d, INT_ENABLE, 0x8000_000F);
    take_locality(&mut d, 0);
    assert_eq!(r32(&mut d, INT_STS) & 0x8, 0x8, "localityChange");
    assert!(d.interrupt_pending());
    w32(&mut d, CTRL_REQ, 1);
    assert_eq!(r32(&mut d, INT_STS) & 0x2, 0x2, "cmdReady");
    w32(&mut d, INT_STS, 0x8);
    assert_eq!(r32(&mut d, INT_STS), 0x2);
    w32(&mut d, INT_STS, 0xFFFF_FFFF);
    assert_eq!(r32(&mut d, INT_STS), 0);
    assert!(!d.interrupt_pending());
}

#[test]
fn ctrl_req_reads_zero_and_moves_idle() {
    let mut d = device();
    take_locality(&mut d, 0);
    w32(&mut d, CTRL_REQ, 1);
    assert_eq!(r32(&mut d, CTRL_REQ), 0);
    assert_eq!(r32(&mut d, CTRL_STS), 0, "ready");
    w32(&mut d, CTRL_REQ, 2);
    assert_eq!(r32(&mut d, CTRL_REQ), 0);
    assert_eq!(r32(&mut d, CTRL_STS), 2, "idle");
    // From a locality that is not active, CTRL_REQ does nothing.
    w32(&mut d, 0x1000 + CTRL_REQ, 1);
    assert_eq!(r32(&mut d, CTRL_STS), 2);
}

#[test]
fn localities_request_relinquish_seize() {
    let mut d = device();
    take_locality(&mut d, 1);
    assert_eq!(r32(&mut d, LOC_STATE), 0x80 | 0x1 | 0x2 | (1 << 2));
    // Locality 3 asks while 1 holds: pending, not granted.
    w32(&mut d, 0x3000 + LOC_CTRL, 1);
    assert_eq!(r32(&mut d, 0x3000 + LOC_STS), 0);
    w32(&mut d, 0x2000 + LOC_CTRL, 1);
    // Relinquish hands over to the highest pending locality.
    w32(&mut d, 0x1000 + LOC_CTRL, 2);
    assert_eq!(d.active_locality(), Some(3));
    assert_eq!(r32(&mut d, 0x3000 + LOC_STS), 1);
    // A lower locality cannot seize; a higher one can, and the loser sees beenSeized.
    w32(&mut d, 0x2000 + LOC_CTRL, 4);
    assert_eq!(d.active_locality(), Some(3));
    w32(&mut d, 0x4000 + LOC_CTRL, 4);
    assert_eq!(d.active_locality(), Some(4));
    assert_eq!(
        r32(&mut d, 0x3000 + LOC_STS),
        0b10,
        "beenSeized, not granted"
    );
    assert_eq!(r32(&mut d, 0x4000 + LOC_STS), 0b01);
    // Requesting again clears beenSeized once granted.
    w32(&mut d, 0x4000 + LOC_CTRL, 2);
    assert_eq!(d.active_locality(), Some(2), "locality 2 was still pending");
    w32(&mut d, 0x2000 + LOC_CTRL, 2);
    assert_eq!(d.active_locality(), None);
    assert_eq!(r32(&mut d, LOC_STATE), 0x81);
    take_locality(&mut d, 3);
    assert_eq!(r32(&mut d, 0x3000 + LOC_STS), 0b01);
}

#[test]
fn reset_establishment_only_from_localities_3_and_4() {
    let mut d = device();
    d.set_established(true);
    assert_eq!(r32(&mut d, LOC_STATE) & 1, 0, "established reads 0");
    for l in 0..3u64 {
        assert_eq!(w32(&mut d, l * 0x1000 + LOC_CTRL, 8), None);
    }
    assert_eq!(
        w32(&mut d, 0x3000 + LOC_CTRL, 8),
        Some(OwnedAction::ResetEstablished(3))
    );
    // Until the host answers, repeats ask nothing more: a guest cannot
    // queue unbounded work.
    for _ in 0..1000 {
        assert_eq!(w32(&mut d, 0x4000 + LOC_CTRL, 8), None);
    }
    d.set_established(true);
    assert_eq!(
        w32(&mut d, 0x4000 + LOC_CTRL, 8),
        Some(OwnedAction::ResetEstablished(4))
    );
    d.set_established(false);
    assert_eq!(r32(&mut d, LOC_STATE) & 1, 1);
    assert_eq!(r32(&mut d, INT_STS) & 0x4, 0x4, "establishmentClear");
}

#[test]
fn ctrl_req_during_execution_reads_1_until_the_command_completes() {
    let mut d = device();
    take_locality(&mut d, 0);
    window_write(&mut d, 0, &command(12, 0));
    let token = match w32(&mut d, CTRL_START, START) {
        Some(OwnedAction::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    w32(&mut d, CTRL_REQ, 2);
    assert_eq!(r32(&mut d, CTRL_REQ), 2, "goIdle pending while executing");
    w32(&mut d, CTRL_REQ, 1);
    assert_eq!(r32(&mut d, CTRL_REQ), 3);
    d.complete(token, Ok(&patterned(40, 1)));
    assert_eq!(r32(&mut d, CTRL_REQ), 0, "applied at completion");
    assert_eq!(r32(&mut d, CTRL_STS), 2, "idle: goIdle came last");
    assert!(
        window_read(&mut d, 0, 40).iter().all(|&b| b == 0),
        "the abandoned response is gone"
    );
    assert_eq!(d.held_bytes(), 0);
}
