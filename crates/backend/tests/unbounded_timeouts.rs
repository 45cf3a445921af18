//! `Duration::MAX` as a timeout means "no deadline", never a panic: the
//! swtpm channels compute their deadlines without overflowing the clock.
//! A peer thread on a socketpair plays swtpm.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vtpm_backend::swtpm::{ControlChannel, DataConnection};

#[test]
fn a_data_channel_with_an_unbounded_command_timeout_still_answers() {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let mut data = DataConnection::from_unix(ours).unwrap();
    data.set_command_timeout(Duration::MAX).unwrap();
    let command = vtpm_client::get_random(8);
    let peer = std::thread::spawn(move || {
        let mut got = [0u8; 12];
        theirs.read_exact(&mut got).unwrap();
        theirs
            .write_all(&[0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0])
            .unwrap();
        got
    });
    let mut response = Vec::new();
    data.transact(&command, &mut response, 4096).unwrap();
    assert_eq!(response, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]);
    assert_eq!(peer.join().unwrap(), *command);
}

#[test]
fn a_control_channel_with_unbounded_reply_timeouts_still_answers() {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let mut ctrl = ControlChannel::from_stream(ours).unwrap();
    ctrl.set_reply_timeout(Duration::MAX).unwrap();
    ctrl.set_cancel_reply_timeout(Duration::MAX);
    let peer = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for _ in 0..2 {
            let mut request = [0u8; 4];
            theirs.read_exact(&mut request).unwrap();
            requests.push(u32::from_be_bytes(request));
            theirs.write_all(&0u32.to_be_bytes()).unwrap();
        }
        requests
    });
    ctrl.cancel_tpm_cmd().unwrap();
    ctrl.store_volatile().unwrap();
    assert_eq!(
        peer.join().unwrap(),
        [9, 10],
        "CANCEL_TPM_CMD, STORE_VOLATILE"
    );
}
