//! Runs the real decoders (ACPICA's `iasl`, the device-tree compiler `dtc`)
//! on what the crate produces. A missing tool fails the test with the
//! Debian package to install: these tests never skip.

#![allow(dead_code)] // each test binary uses part of this module

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `program` with `args` in `dir`, failing the test with the Debian
/// package to install when the program is missing, and with its output
/// when it exits unsuccessfully.
pub fn run(program: &str, package: &str, dir: &Path, args: &[&str]) -> Output {
    let output = match Command::new(program).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "`{program}` is not installed: these tests decode the output with it; \
             install Debian's {package} package (apt-get install {package})"
        ),
        Err(err) => panic!("could not run `{program}`: {err}"),
    };
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What ACPICA's disassembler made of a table.
pub struct Disassembly {
    /// The `.dsl` listing.
    pub dsl: String,
    /// iasl's own messages (stdout and stderr), where firmware warnings
    /// such as a bad checksum also appear.
    pub log: String,
}

impl Disassembly {
    /// The value of a data-table field in the listing, e.g. for
    /// `[004h 0004   4]   Table Length : 0000004C` the value of
    /// `"Table Length"` is `"0000004C"`. Only the first word is returned;
    /// `None` when the listing has no such field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.field_text(name)
            .map(|value| value.split_whitespace().next().unwrap_or(""))
    }

    /// The whole value of a data-table field, trimmed, e.g. every byte of
    /// a byte-array field.
    pub fn field_text(&self, name: &str) -> Option<&str> {
        self.dsl.lines().find_map(|line| {
            let rest = line.trim_start().strip_prefix('[')?;
            let (_, rest) = rest.split_once(']')?;
            let (field, value) = rest.split_once(" : ")?;
            (field.trim() == name).then(|| value.trim())
        })
    }

    /// A field that must be present.
    pub fn expect_field(&self, name: &str) -> &str {
        self.field(name)
            .unwrap_or_else(|| panic!("iasl's listing has no field {name:?}:\n{}", self.dsl))
    }

    /// A hexadecimal field as a number.
    pub fn hex_field(&self, name: &str) -> u64 {
        let value = self.expect_field(name);
        u64::from_str_radix(value, 16)
            .unwrap_or_else(|_| panic!("field {name:?} is not hexadecimal: {value:?}"))
    }

    /// Whether iasl reported a wrong checksum, in the listing or its log.
    pub fn reports_bad_checksum(&self) -> bool {
        self.dsl.contains("Incorrect checksum") || self.log.contains("Incorrect checksum")
    }
}

/// Writes `table` to `dir/<name>.dat` and disassembles it with `iasl -d`.
pub fn iasl_disassemble(dir: &Path, name: &str, table: &[u8]) -> Disassembly {
    let input = format!("{name}.dat");
    std::fs::write(dir.join(&input), table).expect("write the table");
    let output = run("iasl", "acpica-tools", dir, &["-d", &input]);
    let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl")))
        .expect("iasl -d writes a .dsl next to its input");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Disassembly { dsl, log }
}

/// Decodes a device-tree blob to DTS text with `dtc -I dtb -O dts`,
/// returning the text and dtc's messages.
pub fn dtc_decompile(dir: &Path, name: &str, blob: &[u8]) -> (String, String) {
    let input = format!("{name}.dtb");
    let out = format!("{name}.dts");
    std::fs::write(dir.join(&input), blob).expect("write the blob");
    let output = run(
        "dtc",
        "device-tree-compiler",
        dir,
        &["-I", "dtb", "-O", "dts", "-o", &out, &input],
    );
    let dts = std::fs::read_to_string(dir.join(&out)).expect("dtc writes its output");
    (dts, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Compiles DTS text to a blob with `dtc -I dts -O dtb`, returning the
/// blob and dtc's messages.
pub fn dtc_compile(dir: &Path, name: &str, source: &str) -> (Vec<u8>, String) {
    let input = format!("{name}.dts");
    let out = format!("{name}.dtb");
    std::fs::write(dir.join(&input), source).expect("write the source");
    let output = run(
        "dtc",
        "device-tree-compiler",
        dir,
        &["-I", "dts", "-O", "dtb", "-o", &out, &input],
    );
    let blob = std::fs::read(dir.join(&out)).expect("dtc writes its output");
    (blob, String::from_utf8_lossy(&output.stderr).into_owned())
}
