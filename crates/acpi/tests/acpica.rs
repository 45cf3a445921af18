//! The ACPI output, decoded by ACPICA's own disassembler (`iasl -d`,
//! Debian package acpica-tools) and checked field by field.

mod common;

use acpi_tables::sdt::Sdt;
use acpi_tables::{aml, Aml};
use common::{iasl_disassemble, run, Disassembly};
use tempfile::TempDir;
use vtpm_acpi::{
    AcpiDevice, Interface, LogArea, OemIds, PlatformClass, Tpm2Table, TpmLayout,
    DEFAULT_BASE_ADDRESS,
};

fn scratch() -> TempDir {
    tempfile::tempdir().expect("a scratch directory")
}

/// The checks every TPM2 table passes, whatever its options.
fn assert_tpm2_header(decoded: &Disassembly, table: &[u8]) {
    assert_eq!(decoded.expect_field("Signature"), "\"TPM2\"");
    assert_eq!(decoded.hex_field("Table Length"), table.len() as u64);
    assert_eq!(decoded.hex_field("Revision"), 4);
    assert_eq!(decoded.hex_field("Checksum"), u64::from(table[9]));
    assert!(
        !decoded.reports_bad_checksum(),
        "iasl rejects the checksum:\n{}\n{}",
        decoded.dsl,
        decoded.log
    );
    assert_eq!(decoded.expect_field("Asl Compiler ID"), "\"VTPM\"");
    assert_eq!(decoded.hex_field("Reserved"), 0);
    assert_eq!(
        decoded.field_text("Method Parameters"),
        Some("00 00 00 00 00 00 00 00 00 00 00 00"),
        "CRB and TIS take 12 zero parameter bytes"
    );
}

#[test]
fn acpica_decodes_a_crb_table_with_start_method_seven_and_ctrl_req_as_control_area() {
    let dir = scratch();
    let table = Tpm2Table::new(TpmLayout::pc(Interface::Crb)).to_bytes();
    let decoded = iasl_disassemble(dir.path(), "tpm2-crb", &table);
    assert_tpm2_header(&decoded, &table);
    assert_eq!(decoded.hex_field("Table Length"), 64);
    assert_eq!(decoded.hex_field("Start Method"), 7);
    assert!(decoded.dsl.contains("[Command Response Buffer]"));
    assert_eq!(decoded.hex_field("Control Address"), 0xFED4_0040);
    assert_eq!(decoded.hex_field("Platform Class"), 0);
    assert_eq!(decoded.field("Minimum Log Length"), None);
    assert_eq!(decoded.field("Log Address"), None);
}

#[test]
fn acpica_decodes_a_tis_table_with_start_method_six_and_no_control_area() {
    let dir = scratch();
    let layout = TpmLayout::new(Interface::Tis, DEFAULT_BASE_ADDRESS, 5).unwrap();
    let table = Tpm2Table::new(layout).to_bytes();
    let decoded = iasl_disassemble(dir.path(), "tpm2-tis", &table);
    assert_tpm2_header(&decoded, &table);
    assert_eq!(decoded.hex_field("Start Method"), 6);
    assert!(decoded.dsl.contains("[Memory Mapped I/O]"));
    assert_eq!(decoded.hex_field("Control Address"), 0);
    assert_eq!(decoded.field("Minimum Log Length"), None);
}

#[test]
fn acpica_decodes_the_log_area_platform_class_and_oem_fields() {
    let dir = scratch();
    let layout = TpmLayout::new(Interface::Crb, 0xFE00_0000, 1).unwrap();
    let table = Tpm2Table::new(layout)
        .platform_class(PlatformClass::Server)
        .log_area(LogArea {
            minimum_length: 0x1_0000,
            start_address: 0x0000_0001_2345_6000,
        })
        .oem(OemIds {
            oem_id: *b"MYVMM ",
            oem_table_id: *b"MYVMMTPM",
            oem_revision: 0x2026,
        })
        .to_bytes();
    let decoded = iasl_disassemble(dir.path(), "tpm2-log", &table);
    assert_tpm2_header(&decoded, &table);
    assert_eq!(decoded.hex_field("Table Length"), 76);
    assert_eq!(decoded.hex_field("Control Address"), 0xFE00_0040);
    assert_eq!(decoded.hex_field("Platform Class"), 1);
    assert_eq!(decoded.hex_field("Minimum Log Length"), 0x1_0000);
    assert_eq!(decoded.hex_field("Log Address"), 0x0000_0001_2345_6000);
    assert_eq!(decoded.expect_field("Oem ID"), "\"MYVMM");
    assert_eq!(decoded.expect_field("Oem Table ID"), "\"MYVMMTPM\"");
    assert_eq!(decoded.hex_field("Oem Revision"), 0x2026);
}

/// The control for the checksum assertions above: the same decoder does
/// notice a wrong checksum.
#[test]
fn acpica_flags_a_tpm2_table_whose_checksum_is_wrong() {
    let dir = scratch();
    let mut table = Tpm2Table::new(TpmLayout::pc(Interface::Crb)).to_bytes();
    table[9] = table[9].wrapping_add(1);
    let decoded = iasl_disassemble(dir.path(), "tpm2-bad", &table);
    assert!(decoded.reports_bad_checksum(), "{}", decoded.log);
}

/// `(base, length)` of every Memory32Fixed (ReadWrite) descriptor in a
/// listing.
fn memory32_fixed(dsl: &str) -> Vec<(u64, u64)> {
    let lines: Vec<&str> = dsl.lines().collect();
    let hex_before_comma = |line: &str| {
        let value = line.trim().split(',').next().unwrap_or("");
        u64::from_str_radix(value.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("not a hex value line: {line:?}"))
    };
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.contains("Memory32Fixed (ReadWrite,"))
        .map(|(at, _)| {
            assert!(lines[at + 1].contains("// Address Base"), "{dsl}");
            assert!(lines[at + 2].contains("// Address Length"), "{dsl}");
            (
                hex_before_comma(lines[at + 1]),
                hex_before_comma(lines[at + 2]),
            )
        })
        .collect()
}

/// The device declarations every listing of the TPM device holds.
fn assert_tpm_device(dsl: &str) {
    let scope = dsl.find("Scope (\\_SB)").expect("a \\_SB scope");
    let device = dsl.find("Device (TPM)").expect("Device (TPM)");
    assert!(scope < device, "Device (TPM) lies in \\_SB:\n{dsl}");
    assert!(dsl.contains("Name (_HID, \"MSFT0101\""), "{dsl}");
    assert!(dsl.contains("Name (_STA, 0x0F)"), "{dsl}");
    assert!(dsl.contains("Name (_UID, One)"), "{dsl}");
    assert!(dsl.contains("Name (_CRS, ResourceTemplate ()"), "{dsl}");
}

#[test]
fn acpica_decodes_the_ssdt_device_with_a_crs_page_per_locality() {
    for (interface, localities) in [(Interface::Crb, 1u8), (Interface::Tis, 5)] {
        let dir = scratch();
        let layout = TpmLayout::new(interface, DEFAULT_BASE_ADDRESS, localities).unwrap();
        let ssdt = AcpiDevice::new(&layout)
            .unwrap()
            .ssdt(&OemIds::vtpm(*b"VTPMSSDT"));
        let decoded = iasl_disassemble(dir.path(), "ssdt", &ssdt);
        let dsl = &decoded.dsl;
        assert!(
            dsl.contains(
                "DefinitionBlock (\"\", \"SSDT\", 2, \"VTPM  \", \"VTPMSSDT\", 0x00000001)"
            ),
            "{dsl}"
        );
        let length = format!("Length           0x{:08X} ({})", ssdt.len(), ssdt.len());
        assert!(dsl.contains(&length), "{dsl}");
        assert!(!decoded.reports_bad_checksum(), "{dsl}\n{}", decoded.log);
        assert_tpm_device(dsl);
        assert_eq!(
            memory32_fixed(dsl),
            [(0xFED4_0000, u64::from(localities) * 0x1000)],
            "{localities} localities"
        );
    }
}

#[test]
fn acpica_flags_an_ssdt_whose_checksum_is_wrong() {
    let dir = scratch();
    let device = AcpiDevice::new(&TpmLayout::pc(Interface::Crb)).unwrap();
    let mut ssdt = device.ssdt(&OemIds::vtpm(*b"VTPMSSDT"));
    ssdt[9] = ssdt[9].wrapping_sub(1);
    let decoded = iasl_disassemble(dir.path(), "ssdt-bad", &ssdt);
    assert!(decoded.reports_bad_checksum(), "{}", decoded.dsl);
}

/// ACPICA's compiler, given the listing its disassembler made, emits the
/// very AML vtpm wrote: the encoding is the one ASL means.
#[test]
fn acpica_recompiles_the_decoded_ssdt_to_the_same_aml() {
    let dir = scratch();
    let device = AcpiDevice::new(&TpmLayout::pc(Interface::Tis)).unwrap();
    let ssdt = device.ssdt(&OemIds::vtpm(*b"VTPMSSDT"));
    iasl_disassemble(dir.path(), "ssdt", &ssdt);
    run("iasl", "acpica-tools", dir.path(), &["ssdt.dsl"]);
    let recompiled = std::fs::read(dir.path().join("ssdt.aml")).expect("iasl writes ssdt.aml");
    // The header differs only where iasl names itself as the creator.
    assert_eq!(recompiled.len(), ssdt.len());
    assert_eq!(recompiled[36..], ssdt[36..]);
    assert_eq!(recompiled[..9], ssdt[..9]);
    assert_eq!(recompiled[10..28], ssdt[10..28]);
}

/// A VMM that builds its own DSDT with `acpi_tables` adds the device to
/// its `\_SB` scope next to its other devices.
#[test]
fn the_device_embeds_in_a_dsdt_built_with_acpi_tables() {
    let dir = scratch();
    let layout = TpmLayout::new(Interface::Crb, DEFAULT_BASE_ADDRESS, 5).unwrap();
    let tpm = AcpiDevice::new(&layout).unwrap();
    let other_hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
    let other = aml::Device::new("COM1".into(), vec![&other_hid]);
    let sb = aml::Scope::new("\\_SB_".into(), vec![&other, &tpm]);
    let mut dsdt = Sdt::new(*b"DSDT", 36, 2, *b"MYVMM ", *b"MYVMMDSD", 1);
    let mut body = Vec::new();
    sb.to_aml_bytes(&mut body);
    dsdt.append_slice(&body);

    let decoded = iasl_disassemble(dir.path(), "dsdt", dsdt.as_slice());
    assert!(!decoded.reports_bad_checksum(), "{}", decoded.log);
    assert!(decoded.dsl.contains("Device (COM1)"), "{}", decoded.dsl);
    assert_tpm_device(&decoded.dsl);
    assert_eq!(memory32_fixed(&decoded.dsl), [(0xFED4_0000, 0x5000)]);
}

/// Without the decoder these tests cannot check anything, so they fail
/// and say which Debian package to install instead of passing vacuously.
#[test]
#[should_panic(expected = "install Debian's vtpm-missing-package package")]
fn a_missing_decoder_fails_the_test_naming_the_debian_package() {
    let dir = scratch();
    run(
        "vtpm-acpi-no-such-decoder",
        "vtpm-missing-package",
        dir.path(),
        &["-d", "x.dat"],
    );
}
