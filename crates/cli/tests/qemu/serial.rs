//! What the guest's `init.sh` printed: its `vtpm-guest: ` lines on the
//! serial console, among firmware and kernel output.

const PREFIX: &str = "vtpm-guest: ";

/// The guest's report, one field per marker.
#[derive(Debug, Default)]
pub struct GuestReport {
    pub dev_tpm0: Option<String>,
    pub dev_tpmrm0: Option<String>,
    pub driver: Option<String>,
    pub tpm_version_major: Option<String>,
    pub pcr_sha256_0: Option<String>,
    /// `binary_bios_measurements`, decoded from the `log` lines.
    pub event_log: Vec<u8>,
    /// The kernel's own lines about the TPM.
    pub dmesg: Vec<String>,
    /// The guest reached the end of its script.
    pub done: bool,
}

impl GuestReport {
    pub fn parse(serial: &str) -> Result<GuestReport, String> {
        let mut report = GuestReport::default();
        for line in serial.lines() {
            // Firmware clears the screen with escape codes on the same line.
            let Some((_, marker)) = line.split_once(PREFIX) else {
                continue;
            };
            let marker = marker.trim_end();
            if marker == "done" {
                report.done = true;
            } else if let Some(hex) = marker.strip_prefix("log ") {
                for byte in hex.split_whitespace() {
                    let value = u8::from_str_radix(byte, 16)
                        .map_err(|e| format!("bad event log byte {byte:?} in {line:?}: {e}"))?;
                    report.event_log.push(value);
                }
            } else if let Some(text) = marker.strip_prefix("dmesg ") {
                report.dmesg.push(text.to_owned());
            } else if let Some((key, value)) = marker.split_once('=') {
                let slot = match key {
                    "dev_tpm0" => &mut report.dev_tpm0,
                    "dev_tpmrm0" => &mut report.dev_tpmrm0,
                    "driver" => &mut report.driver,
                    "tpm_version_major" => &mut report.tpm_version_major,
                    "pcr_sha256_0" => &mut report.pcr_sha256_0,
                    _ => return Err(format!("unknown marker {line:?}")),
                };
                *slot = Some(value.to_owned());
            } else {
                return Err(format!("unknown marker {line:?}"));
            }
        }
        Ok(report)
    }
}

/// Decodes hex of either case (Linux prints PCRs in upper case).
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_among_escape_codes_and_kernel_lines() {
        let serial = "\x1bc\x1b[?7lSeaBIOS\r\n[    5.0] ima: noise\r\n\
            vtpm-guest: dev_tpm0=present\r\n\
            vtpm-guest: driver=tpm_crb\r\n\
            vtpm-guest: tpm_version_major=2\r\n\
            vtpm-guest: pcr_sha256_0=E21B\r\n\
            vtpm-guest: log  00 0a ff\r\n\
            vtpm-guest: log 10\r\n\
            vtpm-guest: dmesg [ 3.9] tpm_crb MSFT0101:00: Disabling hwrng\r\n\
            vtpm-guest: done\r\n";
        let report = GuestReport::parse(serial).unwrap();
        assert_eq!(report.dev_tpm0.as_deref(), Some("present"));
        assert_eq!(report.dev_tpmrm0, None);
        assert_eq!(report.driver.as_deref(), Some("tpm_crb"));
        assert_eq!(report.tpm_version_major.as_deref(), Some("2"));
        assert_eq!(report.pcr_sha256_0.as_deref(), Some("E21B"));
        assert_eq!(report.event_log, [0x00, 0x0a, 0xff, 0x10]);
        assert_eq!(report.dmesg.len(), 1);
        assert!(report.done);
    }

    #[test]
    fn a_garbled_marker_is_an_error() {
        assert!(GuestReport::parse("vtpm-guest: log 0g\n").is_err());
        assert!(GuestReport::parse("vtpm-guest: mystery\n").is_err());
    }

    #[test]
    fn hex_decodes_either_case_and_refuses_odd_lengths() {
        assert_eq!(decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("0aF"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("+1"), None);
        assert_eq!(encode_hex(&[0x0a, 0xff]), "0AFF");
    }
}
