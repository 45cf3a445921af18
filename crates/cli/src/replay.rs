//! `vtpm replay`: run an MMIO transcript (JSON lines) against a CRB device
//! and check every expectation.

use std::time::{Duration, Instant};

use serde_json::Value;
use vtpm_crb::ChunkPolicy;
use vtpm_guest::Mmio;

/// Device settings a transcript may ask for on its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
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

fn number(v: &Value, what: &str) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{what} must be a non-negative integer")),
        Value::String(s) => {
            let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
            match digits {
                Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
                None => s.parse(),
            }
            .map_err(|_| format!("{what}: {s:?} is not a number"))
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

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !clean.len().is_multiple_of(2) {
        return Err("hex has an odd number of digits".into());
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).map_err(|_| format!("bad hex at {i}")))
        .collect()
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
    /// Parses JSON lines; blank lines and lines starting with `#` or `//` are skipped.
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        let mut config = ReplayConfig {
            window: None,
            chunking: None,
        };
        let mut steps = Vec::new();
        let mut seen_step = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
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
            let step = match kind {
                "config" => {
                    if seen_step {
                        return Err(err("config must be the first line".into()));
                    }
                    if let Some(w) = body.get("window") {
                        config.window = Some(number(w, "window").map_err(err)? as usize);
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
                "write" => Step::Write {
                    locality: locality(body).map_err(err)?,
                    offset: field(body, "offset").map_err(err)?,
                    size: size(body).map_err(err)?,
                    value: field(body, "value").map_err(err)?,
                },
                "read" => Step::Read {
                    locality: locality(body).map_err(err)?,
                    offset: field(body, "offset").map_err(err)?,
                    size: size(body).map_err(err)?,
                    expect: field(body, "expect").map_err(err)?,
                    mask: optional(body, "mask", u64::MAX).map_err(err)?,
                },
                "window_write" => Step::WindowWrite {
                    locality: locality(body).map_err(err)?,
                    offset: optional(body, "offset", 0).map_err(err)?,
                    bytes: hex_bytes(
                        body.get("hex")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("missing \"hex\"".into()))?,
                    )
                    .map_err(err)?,
                },
                "window_read" => {
                    let pattern = hex_pattern(
                        body.get("expect_hex")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("missing \"expect_hex\"".into()))?,
                    )
                    .map_err(err)?;
                    let len = optional(body, "len", pattern.len() as u64).map_err(err)? as usize;
                    if len != pattern.len() {
                        return Err(err(format!(
                            "len {len} but expect_hex has {} bytes",
                            pattern.len()
                        )));
                    }
                    Step::WindowRead {
                        locality: locality(body).map_err(err)?,
                        offset: optional(body, "offset", 0).map_err(err)?,
                        expect: pattern,
                    }
                }
                "wait" => Step::Wait {
                    locality: locality(body).map_err(err)?,
                    offset: field(body, "offset").map_err(err)?,
                    mask: optional(body, "mask", u64::from(u32::MAX)).map_err(err)?,
                    value: field(body, "value").map_err(err)?,
                    timeout: Duration::from_millis(
                        optional(body, "timeout_ms", 2000).map_err(err)?,
                    ),
                },
                other => return Err(err(format!("unknown step {other:?}"))),
            };
            seen_step = true;
            steps.push((line, step));
        }
        Ok(Self { config, steps })
    }
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
}
