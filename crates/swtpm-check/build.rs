//! Fails the build of vtpm's tests, once and with the install step, when
//! swtpm is missing; otherwise every swtpm test would fail on its own.

#[path = "src/find.rs"]
mod find;

fn main() {
    println!("cargo:rerun-if-env-changed=VTPM_SWTPM");
    println!("cargo:rerun-if-env-changed=PATH");
    let vtpm_swtpm = std::env::var_os("VTPM_SWTPM");
    let path = std::env::var_os("PATH");
    if find::find_swtpm(vtpm_swtpm.as_deref(), path.as_deref()).is_none() {
        eprintln!("\n{}\n", find::MISSING);
        std::process::exit(1);
    }
}
