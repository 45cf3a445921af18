//! Standard output that a closed pipe ends quietly.

use std::io::{self, Write};

/// Writes `line` and a newline to standard output. Returns false when the
/// reader is gone (`vtpm exercise | head -1`): the caller then stops
/// quietly, as Unix tools do, instead of panicking the way `println!` does.
pub fn line(line: &str) -> bool {
    let mut out = io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "cannot write to standard output");
            }
            false
        }
    }
}
