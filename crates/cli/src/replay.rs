//! `vtpm replay`: run an MMIO transcript (JSON lines) against a CRB or TIS
//! device and check every expectation.

use std::time::{Duration, Instant};

use serde_json::Value;
use vtpm_crb::ChunkPolicy;
use vtpm_guest::Mmio;
use vtpm_platform::Interface;

use crate::backends::BackendArgs;

/// Device settings a transcript may ask for on its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// The device's interface (CRB when absent).
    pub interface: Option<Interface>,
    /// Data window bytes.
    pub window: Option<usize>,
    /// Chunking policy.
    pub chunking: Option<ChunkPolicy>,
}

/// One step of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A register write.
    Write {
        locality: u8,
        offset: u64,
        size: usize,
        value: u64,
    },
    /// A register read with an expected value under a mask.
    Read {
        locality: u8,
        offset: u64,
        size: usize,
        expect: u64,
        mask: u64,
    },
    /// Bytes written into the data window.
    WindowWrite {
        locality: u8,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// Bytes read from the data window, compared as `(seen & mask) == value`
    /// per byte (an `x` nibble has mask 0).
    WindowRead {
        locality: u8,
        offset: u64,
        expect: Vec<(u8, u8)>,
    },
    /// Bytes written into TPM_DATA_FIFO, one byte per access (TIS).
    FifoWrite { locality: u8, bytes: Vec<u8> },
    /// Bytes read from TPM_DATA_FIFO, one byte per access (TIS), compared
    /// as for [`Step::WindowRead`].
    FifoRead { locality: u8, expect: Vec<(u8, u8)> },
    /// Poll a register until `(reg & mask) == value`.
    Wait {
        locality: u8,
        offset: u64,
        mask: u64,
        value: u64,
        timeout: Duration,
    },
}

/// A parsed transcript: its configuration and its steps with line numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Settings from the optional first `config` line.
    pub config: ReplayConfig,
    /// (line number, step).
    pub steps: Vec<(usize, Step)>,
}

/// A transcript that cannot be read, or an expectation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The line is not a valid step.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The device did not do what the line expected.
    #[error("line {line}: expected {expected}, saw {saw}")]
    Mismatch {
        /// 1-based line number.
        line: usize,
        /// What the line expected.
        expected: String,
        /// What the device gave.
        saw: String,
    },
}

/// The largest `timeout_ms` a wait may ask for: a transcript must not be
/// able to park the tool for hours.
const MAX_WAIT_MS: u64 = 600_000;
/// The window a transcript without `config.window` gets.
const DEFAULT_WINDOW: usize = 3968;
/// The window sizes a CRB device accepts.
const WINDOW_RANGE: std::ops::RangeInclusive<u64> = 64..=3968;

fn number(v: &Value, what: &str) -> Result<u64, String> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if n.as_i64().is_some() {
                Err(format!("{what} {n} is negative"))
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() != 0.0 => Err(format!("{what} {n} is not an integer")),
                    Some(f) if f < 0.0 => Err(format!("{what} {n} is negative")),
                    _ => Err(format!(
                        "{what} {n} is out of range (at most {:#x})",
                        u64::MAX
                    )),
                }
            }
        }
        Value::String(s) => {
            let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => (hex.replace('_', ""), 16),
                None => (s.clone(), 10),
            };
            u64::from_str_radix(&digits, radix).map_err(|e| match e.kind() {
                std::num::IntErrorKind::PosOverflow => {
                    format!("{what} {s:?} is out of range (at most {:#x})", u64::MAX)
                }
                _ => format!("{what}: {s:?} is not a number"),
            })
        }
        _ => Err(format!("{what} must be a number or a \"0x...\" string")),
    }
}

fn field(obj: &Value, name: &str) -> Result<u64, String> {
    number(
        obj.get(name).ok_or_else(|| format!("missing \"{name}\""))?,
        name,
    )
}

fn optional(obj: &Value, name: &str, default: u64) -> Result<u64, String> {
    obj.get(name).map_or(Ok(default), |v| number(v, name))
}

fn locality(obj: &Value) -> Result<u8, String> {
    match optional(obj, "locality", 0)? {
        l @ 0..=4 => Ok(l as u8),
        l => Err(format!("locality {l} is outside 0..=4")),
    }
}

fn size(obj: &Value) -> Result<usize, String> {
    match optional(obj, "size", 4)? {
        s @ (1 | 2 | 4 | 8) => Ok(s as usize),
        s => Err(format!("size {s} must be 1, 2, 4 or 8")),
    }
}

/// Refuses a body that is not an object or has a key `kind` does not take
/// (a misspelt key would otherwise be ignored silently).
fn known_keys(kind: &str, body: &Value, keys: &[&str]) -> Result<(), String> {
    let obj = body
        .as_object()
        .ok_or_else(|| format!("\"{kind}\" must hold an object"))?;
    match obj.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(unknown) => Err(format!(
            "unknown key {unknown:?} in \"{kind}\" (it takes {})",
            keys.join(", ")
        )),
        None => Ok(()),
    }
}

/// A register access of `size` bytes at `offset` must stay in the
/// locality's 4 KiB page.
fn register_offset(obj: &Value, size: usize) -> Result<u64, String> {
    let offset = field(obj, "offset")?;
    if offset.checked_add(size as u64).is_none_or(|end| end > PAGE) {
        return Err(format!(
            "offset {offset:#x} with {size} bytes is outside the locality's {PAGE:#x}-byte page"
        ));
    }
    Ok(offset)
}

/// `len` window bytes at `offset` must stay in the data window.
fn window_range(obj: &Value, len: usize, window: usize) -> Result<u64, String> {
    let offset = optional(obj, "offset", 0)?;
    if len == 0 {
        return Err("no bytes: a window access needs at least one".into());
    }
    if offset
        .checked_add(len as u64)
        .is_none_or(|end| end > window as u64)
    {
        return Err(format!(
            "{len} bytes at window offset {offset:#x} go past the {window}-byte window"
        ));
    }
    Ok(offset)
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let digits = s
        .chars()
        .enumerate()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(i, c)| {
            c.to_digit(16)
                .map(|d| d as u8)
                .ok_or_else(|| format!("bad hex digit {c:?} at character {i}"))
        })
        .collect::<Result<Vec<u8>, String>>()?;
    if !digits.len().is_multiple_of(2) {
        return Err("hex has an odd number of digits".into());
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Parses an expectation where `x` matches any nibble, as (value, mask) bytes.
fn hex_pattern(s: &str) -> Result<Vec<(u8, u8)>, String> {
    let clean: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !clean.len().is_multiple_of(2) {
        return Err("expect_hex has an odd number of digits".into());
    }
    clean
        .chunks(2)
        .map(|pair| {
            let mut value = 0u8;
            let mut mask = 0u8;
            for &c in pair {
                value <<= 4;
                mask <<= 4;
                if c != 'x' && c != 'X' {
                    value |= c
                        .to_digit(16)
                        .ok_or_else(|| format!("bad hex digit {c:?}"))?
                        as u8;
                    mask |= 0xF;
                }
            }
            Ok((value, mask))
        })
        .collect()
}

impl Transcript {
    /// Parses JSON lines; blank lines and lines starting with `#` or `//` are
    /// skipped. Every offset and length is checked against the device (a
    /// register access stays in its locality's page, a window access in the
    /// window), and a transcript needs at least one step.
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        let mut config = ReplayConfig {
            interface: None,
            window: None,
            chunking: None,
        };
        let mut steps = Vec::new();
        let mut seen_step = false;
        let mut lines = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            lines = line;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("//") {
                continue;
            }
            let err = |message: String| ReplayError::Parse { line, message };
            let value: Value =
                serde_json::from_str(trimmed).map_err(|e| err(format!("not JSON: {e}")))?;
            let obj = value
                .as_object()
                .ok_or_else(|| err("each line must be a JSON object".into()))?;
            if obj.len() != 1 {
                return Err(err("each line must have exactly one key".into()));
            }
            let (kind, body) = obj
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .ok_or_else(|| err("empty object".into()))?;
            let window = config.window.unwrap_or(DEFAULT_WINDOW);
            let tis = config.interface == Some(Interface::Tis);
            if kind.starts_with("window_") && tis {
                return Err(err(format!(
                    "{kind} needs the CRB interface; TIS transcripts use fifo_write and fifo_read"
                )));
            }
            if kind.starts_with("fifo_") && !tis {
                return Err(err(format!(
                    "{kind} needs the TIS interface (config {{\"interface\": \"tis\"}})"
                )));
            }
            let step = match kind {
                "config" => {
                    if seen_step {
                        return Err(err("config must be the first line".into()));
                    }
                    known_keys(kind, body, &["interface", "window", "chunking"]).map_err(err)?;
                    if let Some(i) = body.get("interface") {
                        let s = i
                            .as_str()
                            .ok_or_else(|| err("interface must be \"crb\" or \"tis\"".into()))?;
                        config.interface = Some(s.parse().map_err(err)?);
                    }
                    if config.interface == Some(Interface::Tis)
                        && (body.get("window").is_some() || body.get("chunking").is_some())
                    {
                        return Err(err(
                            "window and chunking apply to the CRB interface only".into()
                        ));
                    }
                    if let Some(w) = body.get("window") {
                        let w = number(w, "window").map_err(err)?;
                        if !WINDOW_RANGE.contains(&w) {
                            return Err(err(format!(
                                "window {w} is outside {}..={}",
                                WINDOW_RANGE.start(),
                                WINDOW_RANGE.end()
                            )));
                        }
                        config.window = Some(w as usize);
                    }
                    if let Some(c) = body.get("chunking") {
                        let s = c.as_str().ok_or_else(|| {
                            err("chunking must be \"auto\", \"on\" or \"off\"".into())
                        })?;
                        config.chunking = Some(s.parse().map_err(err)?);
                    }
                    seen_step = true;
                    continue;
                }
                "write" => {
                    known_keys(kind, body, &["locality", "offset", "size", "value"])
                        .map_err(err)?;
                    let size = size(body).map_err(err)?;
                    let value = field(body, "value").map_err(err)?;
                    if size < 8 && value >> (size * 8) != 0 {
                        return Err(err(format!("value {value:#x} does not fit {size} bytes")));
                    }
                    Step::Write {
                        locality: locality(body).map_err(err)?,
                        offset: register_offset(body, size).map_err(err)?,
                        size,
                        value,
                    }
                }
                "read" => {
                    known_keys(
                        kind,
                        body,
                        &["locality", "offset", "size", "expect", "mask"],
                    )
                    .map_err(err)?;
                    let size = size(body).map_err(err)?;
                    let expect = field(body, "expect").map_err(err)?;
                    let mask = optional(body, "mask", u64::MAX).map_err(err)?;
                    if size < 8 && (expect & mask) >> (size * 8) != 0 {
                        return Err(err(format!(
                            "expect {expect:#x} does not fit {size} bytes, so it can never match"
                        )));
                    }
                    Step::Read {
                        locality: locality(body).map_err(err)?,
                        offset: register_offset(body, size).map_err(err)?,
                        size,
                        expect,
                        mask,
                    }
                }
                "window_write" => {
                    known_keys(kind, body, &["locality", "offset", "hex"]).map_err(err)?;
                    let bytes = hex_bytes(
                        body.get("hex")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("missing \"hex\" (a string)".into()))?,
                    )
                    .map_err(err)?;
                    Step::WindowWrite {
                        locality: locality(body).map_err(err)?,
                        offset: window_range(body, bytes.len(), window).map_err(err)?,
                        bytes,
                    }
                }
                "window_read" => {
                    known_keys(kind, body, &["locality", "offset", "len", "expect_hex"])
                        .map_err(err)?;
                    let pattern = hex_pattern(
                        body.get("expect_hex")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("missing \"expect_hex\" (a string)".into()))?,
                    )
                    .map_err(err)?;
                    let len = optional(body, "len", pattern.len() as u64).map_err(err)?;
                    if len != pattern.len() as u64 {
                        return Err(err(format!(
                            "len {len} but expect_hex has {} bytes",
                            pattern.len()
                        )));
                    }
                    Step::WindowRead {
                        locality: locality(body).map_err(err)?,
                        offset: window_range(body, pattern.len(), window).map_err(err)?,
                        expect: pattern,
                    }
                }
                "fifo_write" => {
                    known_keys(kind, body, &["locality", "hex"]).map_err(err)?;
                    let bytes = hex_bytes(
                        body.get("hex")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("missing \"hex\" (a string)".into()))?,
                    )
                    .map_err(err)?;
                    if bytes.is_empty() {
                        return Err(err("no bytes: a FIFO access needs at least one".into()));
                    }
                    Step::FifoWrite {
                        locality: locality(body).map_err(err)?,
                        bytes,
                    }
                }
                "fifo_read" => {
                    known_keys(kind, body, &["locality", "len", "expect_hex"]).map_err(err)?;
                    let pattern = hex_pattern(
                        body.get("expect_hex")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("missing \"expect_hex\" (a string)".into()))?,
                    )
                    .map_err(err)?;
                    let len = optional(body, "len", pattern.len() as u64).map_err(err)?;
                    if len != pattern.len() as u64 || pattern.is_empty() {
                        return Err(err(format!(
                            "len {len} but expect_hex has {} bytes (at least one)",
                            pattern.len()
                        )));
                    }
                    Step::FifoRead {
                        locality: locality(body).map_err(err)?,
                        expect: pattern,
                    }
                }
                "wait" => {
                    known_keys(
                        kind,
                        body,
                        &["locality", "offset", "mask", "value", "timeout_ms"],
                    )
                    .map_err(err)?;
                    let timeout_ms = optional(body, "timeout_ms", 2000).map_err(err)?;
                    if timeout_ms > MAX_WAIT_MS {
                        return Err(err(format!(
                            "timeout_ms {timeout_ms} is above {MAX_WAIT_MS}"
                        )));
                    }
                    let mask = optional(body, "mask", u64::from(u32::MAX)).map_err(err)?;
                    let value = field(body, "value").map_err(err)?;
                    if value & !(mask & u64::from(u32::MAX)) != 0 {
                        return Err(err(format!(
                            "value {value:#x} has bits outside the 32-bit mask {mask:#x}, \
                             so the wait could never end"
                        )));
                    }
                    Step::Wait {
                        locality: locality(body).map_err(err)?,
                        offset: register_offset(body, 4).map_err(err)?,
                        mask,
                        value,
                        timeout: Duration::from_millis(timeout_ms),
                    }
                }
                other => return Err(err(format!("unknown step {other:?}"))),
            };
            seen_step = true;
            steps.push((line, step));
        }
        if steps.is_empty() {
            return Err(ReplayError::Parse {
                line: lines.max(1),
                message: "the transcript ends without a step (write, read, window_write, \
                          window_read, fifo_write, fifo_read or wait)"
                    .into(),
            });
        }
        Ok(Self { config, steps })
    }
}

/// Parses `text` and runs it on a fresh device over the backend `backend`
/// opens. The outer error means the transcript (or the backend) cannot be
/// used at all; the inner one that an expectation failed.
pub fn replay(
    text: &str,
    backend: &BackendArgs,
) -> Result<Result<usize, ReplayError>, crate::AnyError> {
    let transcript = Transcript::parse(text)?;
    let device = crate::DeviceArgs {
        interface: transcript.config.interface.unwrap_or_default(),
        window: transcript.config.window.unwrap_or(DEFAULT_WINDOW),
        chunking: transcript.config.chunking.unwrap_or_default(),
        // Transcripts check window reads and writes against the device.
        window_in_ram: false,
        inline: false,
    };
    let platform = crate::platform(backend, &device, &crate::watch::Monitor::default())?;
    let mut bus = platform.bus();
    Ok(run(&transcript, &mut bus))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pattern_hex(pattern: &[(u8, u8)]) -> String {
    pattern
        .iter()
        .flat_map(|&(v, m)| [(v >> 4, m >> 4), (v & 0xF, m & 0xF)])
        .map(|(v, m)| {
            if m == 0 {
                'x'
            } else {
                char::from_digit(u32::from(v), 16).unwrap_or('?')
            }
        })
        .collect()
}

const PAGE: u64 = 0x1000;
const WINDOW: u64 = 0x80;
/// TPM_DATA_FIFO.
const DATA_FIFO: u64 = 0x24;

/// Runs `transcript` on `mmio`; returns the number of steps checked.
pub fn run(transcript: &Transcript, mmio: &mut impl Mmio) -> Result<usize, ReplayError> {
    for (line, step) in &transcript.steps {
        let line = *line;
        match step {
            Step::Write {
                locality,
                offset,
                size,
                value,
            } => {
                let bytes = value.to_le_bytes();
                mmio.write(u64::from(*locality) * PAGE + offset, &bytes[..*size]);
            }
            Step::Read {
                locality,
                offset,
                size,
                expect,
                mask,
            } => {
                let seen = read(mmio, *locality, *offset, *size);
                if seen & mask != expect & mask {
                    return Err(ReplayError::Mismatch {
                        line,
                        expected: format!("{expect:#x} under mask {mask:#x}"),
                        saw: format!("{seen:#x}"),
                    });
                }
            }
            Step::WindowWrite {
                locality,
                offset,
                bytes,
            } => {
                mmio.write(u64::from(*locality) * PAGE + WINDOW + offset, bytes);
            }
            Step::WindowRead {
                locality,
                offset,
                expect,
            } => {
                let mut seen = vec![0u8; expect.len()];
                mmio.read(u64::from(*locality) * PAGE + WINDOW + offset, &mut seen);
                if seen.iter().zip(expect).any(|(s, (v, m))| s & m != *v) {
                    return Err(ReplayError::Mismatch {
                        line,
                        expected: pattern_hex(expect),
                        saw: to_hex(&seen),
                    });
                }
            }
            Step::FifoWrite { locality, bytes } => {
                for b in bytes {
                    mmio.write(u64::from(*locality) * PAGE + DATA_FIFO, &[*b]);
                }
            }
            Step::FifoRead { locality, expect } => {
                let mut seen = vec![0u8; expect.len()];
                for b in seen.iter_mut() {
                    mmio.read(
                        u64::from(*locality) * PAGE + DATA_FIFO,
                        std::slice::from_mut(b),
                    );
                }
                if seen.iter().zip(expect).any(|(s, (v, m))| s & m != *v) {
                    return Err(ReplayError::Mismatch {
                        line,
                        expected: pattern_hex(expect),
                        saw: to_hex(&seen),
                    });
                }
            }
            Step::Wait {
                locality,
                offset,
                mask,
                value,
                timeout,
            } => {
                let start = Instant::now();
                loop {
                    let seen = read(mmio, *locality, *offset, 4);
                    if seen & mask == *value {
                        break;
                    }
                    if start.elapsed() >= *timeout {
                        return Err(ReplayError::Mismatch {
                            line,
                            expected: format!("(reg & {mask:#x}) == {value:#x} within {timeout:?}"),
                            saw: format!("{seen:#x}"),
                        });
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
    }
    Ok(transcript.steps.len())
}

fn read(mmio: &mut impl Mmio, locality: u8, offset: u64, size: usize) -> u64 {
    let mut b = [0u8; 8];
    mmio.read(u64::from(locality) * PAGE + offset, &mut b[..size]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_step_kind() {
        let t = Transcript::parse(concat!(
            "{\"config\": {\"window\": 256, \"chunking\": \"on\"}}\n",
            "# a comment\n",
            "{\"write\": {\"locality\": 0, \"offset\": 76, \"size\": 4, \"value\": 1}}\n",
            "{\"read\": {\"locality\": 1, \"offset\": \"0x0\", \"size\": 1, \"expect\": 130, \"mask\": \"0xff\"}}\n",
            "{\"window_write\": {\"locality\": 0, \"offset\": 0, \"hex\": \"8001\"}}\n",
            "{\"window_read\": {\"locality\": 0, \"offset\": 0, \"len\": 2, \"expect_hex\": \"8x0x\"}}\n",
            "{\"wait\": {\"locality\": 0, \"offset\": 76, \"mask\": 1, \"value\": 0, \"timeout_ms\": 5}}\n",
        ))
        .unwrap();
        assert_eq!(t.config.window, Some(256));
        assert_eq!(t.config.chunking, Some(ChunkPolicy::On));
        assert_eq!(t.steps.len(), 5);
        assert_eq!(t.steps[0].0, 3);
        assert_eq!(
            t.steps[1].1,
            Step::Read {
                locality: 1,
                offset: 0,
                size: 1,
                expect: 130,
                mask: 0xFF
            }
        );
        assert_eq!(
            t.steps[3].1,
            Step::WindowRead {
                locality: 0,
                offset: 0,
                expect: vec![(0x80, 0xF0), (0x00, 0xF0)]
            }
        );
    }

    #[test]
    fn parse_errors_name_the_line() {
        let cases = [
            (
                "{\"write\": {\"offset\": 76, \"value\": 1, \"size\": 3}}",
                "size 3",
            ),
            ("{\"read\": {\"offset\": 0}}", "missing \"expect\""),
            ("{\"bogus\": {}}", "unknown step"),
            ("[1]", "JSON object"),
            (
                "{\"window_read\": {\"len\": 3, \"expect_hex\": \"00\"}}",
                "len 3",
            ),
            (
                "{\"write\": {\"locality\": 5, \"offset\": 0, \"value\": 0}}",
                "locality 5",
            ),
        ];
        for (text, needle) in cases {
            let e = Transcript::parse(&format!("\n{text}")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("line 2:") && msg.contains(needle), "{msg}");
        }
        let late =
            Transcript::parse("{\"write\": {\"offset\": 0, \"value\": 0}}\n{\"config\": {}}")
                .unwrap_err();
        assert!(late.to_string().contains("first line"));
    }

    /// Transcripts `replay` may meet: the shipped ones without their waits
    /// (a mutated wait could legitimately poll for minutes).
    fn seeds() -> Vec<String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../transcripts");
        let mut seeds: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .map(|t| {
                t.lines()
                    .filter(|l| !l.contains("\"wait\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty());
        seeds
    }

    fn sim() -> BackendArgs {
        BackendArgs {
            backend: crate::backends::BackendKind::Sim,
            buffer_size: None,
            timeout: None,
            swtpm_binary: None,
            swtpm_state_dir: None,
            swtpm_ctrl: None,
            swtpm_data: None,
            shutdown: false,
            mssim: None,
        }
    }

    /// What `vtpm replay` exits with for `text`; every message it would
    /// print names a line.
    fn exit_code(text: &str) -> u8 {
        match replay(text, &sim()) {
            Ok(Ok(_)) => 0,
            Ok(Err(e)) => {
                assert!(e.to_string().starts_with("line "), "{e}");
                1
            }
            Err(e) => {
                assert!(e.to_string().starts_with("line "), "{e}");
                2
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Delete(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        // Bytes that matter to the parser, and any byte at all.
        let byte = prop_oneof![
            prop::sample::select(b"{}[]\":,0123456789abcdefxX-. \n\\".to_vec()),
            any::<u8>(),
        ];
        prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
        ]
    }

    fn mutate(seed: &str, edits: &[Edit]) -> String {
        let mut bytes = seed.as_bytes().to_vec();
        for e in edits {
            let n = bytes.len().max(1);
            match *e {
                Edit::Replace(i, b) if !bytes.is_empty() => bytes[i % n] = b,
                Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Edit::Delete(i) if !bytes.is_empty() => {
                    bytes.remove(i % n);
                }
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn the_shipped_transcripts_without_waits_still_parse_and_run() {
        for seed in seeds() {
            assert!(exit_code(&seed) <= 1, "{seed}");
        }
    }

    /// A line of one step kind with random keys and values, misspelt keys
    /// and out-of-range numbers among them.
    fn random_line() -> impl Strategy<Value = String> {
        let kind = prop::sample::select(vec![
            "write",
            "read",
            "window_write",
            "window_read",
            "fifo_write",
            "fifo_read",
            "config",
            "bogus",
        ]);
        let key = prop::sample::select(vec![
            "locality",
            "offset",
            "size",
            "value",
            "expect",
            "mask",
            "hex",
            "expect_hex",
            "len",
            "window",
            "chunking",
            "interface",
            "localty",
        ]);
        let value = prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            (0u64..0x2000).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| format!("\"{n:#x}\"")),
            "[0-9a-fxX\u{e9} ]{0,12}".prop_map(|s| format!("{s:?}")),
            prop::sample::select(vec![
                "1e30",
                "-0.5",
                "null",
                "\"on\"",
                "99999999999999999999999"
            ])
            .prop_map(str::to_string),
        ];
        (kind, prop::collection::vec((key, value), 0..5)).prop_map(|(kind, fields)| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
            format!("{{{kind:?}: {{{}}}}}", body.join(", "))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn mutated_transcripts_exit_0_1_or_2_and_never_panic(
            pick in any::<prop::sample::Index>(),
            edits in prop::collection::vec(edit(), 1..8),
        ) {
            let seeds = seeds();
            let text = mutate(&seeds[pick.index(seeds.len())], &edits);
            prop_assert!(exit_code(&text) <= 2);
        }

        #[test]
        fn random_text_exits_0_1_or_2_and_never_panics(text in "\\PC{0,200}") {
            prop_assert!(exit_code(&text) <= 2);
        }

        #[test]
        fn random_steps_exit_0_1_or_2_and_never_panic(
            lines in prop::collection::vec(random_line(), 0..6),
        ) {
            prop_assert!(exit_code(&lines.join("\n")) <= 2);
        }
    }
}
