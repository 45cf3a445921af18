//! Whole client streams through each channel's handler, in process: any
//! bytes end without a panic or a hang, and well-formed ones are answered
//! with well-formed frames.

mod common;

use common::sim;
use proptest::prelude::*;
use vtpm_client::get_random;
use vtpm_server::engine::{Tpm, TpmOptions};
use vtpm_server::fuzzing::{run_stream, Channel};

fn tpm() -> Tpm {
    let mut tpm = Tpm::new(
        sim(8192),
        None,
        None,
        TpmOptions {
            startup_clear: true,
        },
    )
    .unwrap();
    tpm.power_on_at_start().unwrap();
    tpm
}

const CHANNELS: [Channel; 4] = [
    Channel::MssimCommand,
    Channel::MssimPlatform,
    Channel::SwtpmCtrl,
    Channel::SwtpmData,
];

#[test]
fn two_mssim_commands_in_one_stream_come_back_as_two_frames() {
    let command = get_random(8);
    let mut stream = Vec::new();
    for _ in 0..2 {
        stream.extend_from_slice(&8u32.to_be_bytes());
        stream.push(0);
        stream.extend_from_slice(&(command.len() as u32).to_be_bytes());
        stream.extend_from_slice(&command);
    }
    stream.extend_from_slice(&20u32.to_be_bytes());
    let out = run_stream(tpm(), Channel::MssimCommand, &stream).unwrap();
    assert_eq!(out.len(), 2 * (4 + 20 + 4));
    for frame in out.chunks(28) {
        assert_eq!(&frame[..4], &20u32.to_be_bytes());
        assert_eq!(&frame[4..14], &[0x80, 1, 0, 0, 0, 20, 0, 0, 0, 0]);
        assert_eq!(&frame[24..], &[0; 4]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_stream_on_any_channel_ends_without_a_panic(
        channel in 0usize..4,
        stream in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let out = run_stream(tpm(), CHANNELS[channel], &stream).unwrap();
        if CHANNELS[channel] == Channel::SwtpmData {
            // Every reply on the data channel is a whole TPM response.
            let mut rest = &out[..];
            while !rest.is_empty() {
                prop_assert!(rest.len() >= 10);
                let size = u32::from_be_bytes(rest[2..6].try_into().unwrap()) as usize;
                prop_assert!((10..=rest.len()).contains(&size));
                rest = &rest[size..];
            }
        }
    }
}
