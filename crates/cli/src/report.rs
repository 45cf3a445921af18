//! What each step moved, as a table or as JSON lines.

use serde::Serialize;

/// One step of a workload.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StepReport {
    /// The step's name.
    pub step: String,
    /// The TPM command it sent.
    pub command: &'static str,
    /// Command bytes.
    pub request_bytes: usize,
    /// Response bytes.
    pub response_bytes: usize,
    /// Window pieces the driver wrote (TIS: FIFO bursts written).
    pub chunks_sent: usize,
    /// Window pieces the driver read (TIS: FIFO bursts read).
    pub chunks_received: usize,
    /// The response code as "0x..." (null when no response came back).
    pub rc: Option<String>,
    /// Whether the step's check held.
    pub ok: bool,
    /// Wall time of the round trip.
    pub micros: u64,
    /// MMIO accesses a VMM would trap during the step (registers, and
    /// window accesses unless the window is guest RAM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mmio_exits: Option<u64>,
    /// What was checked, or why it failed.
    pub detail: String,
}

/// The closing line of a workload.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Backend name.
    pub backend: String,
    /// "crb" or "tis".
    pub interface: &'static str,
    /// The backend's negotiated buffer.
    pub backend_buffer: usize,
    /// The CRB data window (absent for TIS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Whether the device advertised CapCRBChunk (absent for TIS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunking_advertised: Option<bool>,
    /// Steps run.
    pub steps: usize,
    /// Steps that failed.
    pub failed: usize,
    /// Whether the data window was guest RAM (`--window-in-ram`).
    pub window_in_ram: bool,
    /// MMIO accesses a VMM would have trapped over the whole run.
    pub mmio_exits: u64,
    /// Snapshots restored into a fresh device and backend, when migrating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<u64>,
    /// Why the run stopped before its last step ("step: cause"), when a
    /// failure would have repeated in every later step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// Formats a response code the way the tables show it.
pub fn rc_string(rc: u32) -> String {
    format!("{rc:#05x}")
}

/// Prints one step as a JSON line.
pub fn json_line(step: &StepReport) -> String {
    serde_json::to_string(step).unwrap_or_default()
}

/// Prints the summary as a JSON line.
pub fn json_summary(summary: &Summary) -> String {
    serde_json::json!({ "summary": summary }).to_string()
}

/// The header of the table.
pub fn table_header() -> String {
    format!(
        "{:<28} {:<22} {:>7} {:>7} {:>5} {:>5} {:>6} {:>10}  {}",
        "step", "command", "req B", "rsp B", "sent", "recv", "rc", "time", "check"
    )
}

/// One table row.
pub fn table_row(s: &StepReport) -> String {
    format!(
        "{:<28} {:<22} {:>7} {:>7} {:>5} {:>5} {:>6} {:>7} µs  {}{}",
        s.step,
        s.command,
        s.request_bytes,
        s.response_bytes,
        s.chunks_sent,
        s.chunks_received,
        s.rc.as_deref().unwrap_or("-"),
        s.micros,
        if s.ok { "ok " } else { "FAILED " },
        s.detail
    )
}

/// The closing lines of the table.
pub fn table_summary(s: &Summary) -> String {
    let device = match (s.window, s.chunking_advertised) {
        (Some(window), Some(chunking)) => format!(
            "window {window} B, CapCRBChunk {}",
            if chunking {
                "advertised"
            } else {
                "not advertised"
            }
        ),
        _ => format!("{} interface", s.interface.to_uppercase()),
    };
    let mut out = format!(
        "\nbackend {} (buffer {} B), {device}: {} steps, {} failed",
        s.backend, s.backend_buffer, s.steps, s.failed
    );
    out.push_str(&format!(
        ", {} MMIO exits (window {})",
        s.mmio_exits,
        if s.window_in_ram {
            "in guest RAM"
        } else {
            "trapped"
        }
    ));
    if let Some(m) = s.migrations {
        out.push_str(&format!(", {m} migrations"));
    }
    if let Some(why) = &s.stopped {
        out.push_str(&format!("\nstopped after {why}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_keys() {
        let step = StepReport {
            step: "full_frame".into(),
            command: "GetRandom",
            request_bytes: 4096,
            response_bytes: 10,
            chunks_sent: 2,
            chunks_received: 1,
            rc: Some(rc_string(0x95)),
            ok: true,
            micros: 5,
            mmio_exits: Some(40),
            detail: String::new(),
        };
        let v: serde_json::Value = serde_json::from_str(&json_line(&step)).unwrap();
        for key in [
            "step",
            "command",
            "request_bytes",
            "response_bytes",
            "chunks_sent",
            "chunks_received",
            "rc",
            "ok",
            "micros",
            "mmio_exits",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["rc"], "0x095");
        let summary = Summary {
            backend: "sim".into(),
            interface: "crb",
            backend_buffer: 8192,
            window: Some(3968),
            chunking_advertised: Some(true),
            steps: 1,
            failed: 0,
            window_in_ram: false,
            mmio_exits: 40,
            migrations: None,
            stopped: None,
        };
        let v: serde_json::Value = serde_json::from_str(&json_summary(&summary)).unwrap();
        assert_eq!(v["summary"]["failed"], 0);
        assert_eq!(v["summary"]["mmio_exits"], 40);
        assert!(v["summary"].get("migrations").is_none());
        assert!(v["summary"].get("stopped").is_none());
    }
}
