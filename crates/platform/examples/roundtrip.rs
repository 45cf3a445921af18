//! Round trips of an 8 KiB command and an 8 KiB response (window 3968,
//! echo backend, inline) for counting host instructions with callgrind:
//! `scripts/callgrind-roundtrip.sh` runs it with two round-trip counts and
//! divides the difference, so setup cancels out.
//!
//! `roundtrip <trapped|ram> <round trips>`

use vtpm_backend::testing::FnBackend;
use vtpm_platform::{Execution, Platform, PlatformConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let window_in_ram = match args.next().as_deref() {
        Some("trapped") => false,
        Some("ram") => true,
        other => return Err(format!("mode must be trapped or ram, not {other:?}").into()),
    };
    let trips: u32 = args.next().ok_or("how many round trips?")?.parse()?;
    let config = PlatformConfig {
        window_size: 3968,
        execution: Execution::Inline,
        window_in_ram,
        ..PlatformConfig::default()
    };
    let platform = Platform::new(Box::new(FnBackend::echo(8192)), config)?;
    let mut driver = platform.driver();
    let command = vtpm_client::padded_get_random(8192);
    let mut response = Vec::with_capacity(8192);
    // Probe and locality grant happen before the measured trips.
    driver.transmit_with(0, &command, &mut response, Default::default())?;
    for _ in 0..trips {
        driver.transmit_with(0, &command, &mut response, Default::default())?;
        if response.len() != command.len() {
            return Err("the echo came back short".into());
        }
    }
    Ok(())
}
