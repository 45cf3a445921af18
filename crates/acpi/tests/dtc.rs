//! The device-tree node, written into a whole FDT with vm-fdt and decoded
//! by the device-tree compiler (`dtc`, Debian package
//! device-tree-compiler).
#![cfg(feature = "fdt")]

mod common;

use common::{dtc_compile, dtc_decompile};
use tempfile::TempDir;
use vm_fdt::FdtWriter;
use vtpm_acpi::{CellSizes, Interface, TisNode, TpmLayout, DEFAULT_BASE_ADDRESS};

fn scratch() -> TempDir {
    tempfile::tempdir().expect("a scratch directory")
}

/// A minimal ARM-style tree: a root declaring `cells`, a memory node, and
/// the TPM node.
fn machine_fdt(node: &TisNode, cells: CellSizes) -> Vec<u8> {
    let mut fdt = FdtWriter::new().unwrap();
    let root = fdt.begin_node("").unwrap();
    fdt.property_string("compatible", "linux,dummy-virt")
        .unwrap();
    fdt.property_u32("#address-cells", cells.address_cells())
        .unwrap();
    fdt.property_u32("#size-cells", cells.size_cells()).unwrap();
    let memory = fdt.begin_node("memory@40000000").unwrap();
    fdt.property_string("device_type", "memory").unwrap();
    let mut reg = Vec::new();
    if cells.address_cells() == 2 {
        reg.push(0);
    }
    reg.push(0x4000_0000);
    if cells.size_cells() == 2 {
        reg.push(0);
    }
    reg.push(0x1000_0000);
    fdt.property_array_u32("reg", &reg).unwrap();
    fdt.end_node(memory).unwrap();
    node.write_to(&mut fdt).unwrap();
    fdt.end_node(root).unwrap();
    fdt.finish().unwrap()
}

/// The property lines of node `name` in decoded DTS text.
fn node_properties<'a>(dts: &'a str, name: &str) -> Vec<&'a str> {
    let opening = format!("{name} {{");
    let mut lines = dts.lines().skip_while(|line| line.trim() != opening);
    assert!(lines.next().is_some(), "no node {name} in:\n{dts}");
    lines
        .map(str::trim)
        .take_while(|line| *line != "};")
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn dtc_decodes_the_tis_node_of_a_whole_fdt_built_with_vm_fdt() {
    let cases = [
        (
            TpmLayout::pc(Interface::Tis),
            CellSizes::TWO,
            "tpm@fed40000",
            "reg = <0x00 0xfed40000 0x00 0x5000>;",
        ),
        (
            TpmLayout::pc(Interface::Tis),
            CellSizes::ONE,
            "tpm@fed40000",
            "reg = <0xfed40000 0x5000>;",
        ),
        (
            TpmLayout::new(Interface::Tis, 0x9_0000_0000, 1).unwrap(),
            CellSizes::TWO,
            "tpm@900000000",
            "reg = <0x09 0x00 0x00 0x1000>;",
        ),
    ];
    for (layout, cells, name, reg) in cases {
        let dir = scratch();
        let node = TisNode::new(&layout, cells).unwrap();
        let (dts, messages) = dtc_decompile(dir.path(), "machine", &machine_fdt(&node, cells));
        assert!(!messages.contains("Warning"), "dtc warns:\n{messages}");
        assert_eq!(
            node_properties(&dts, name),
            ["compatible = \"tcg,tpm-tis-mmio\";", reg],
            "{dts}"
        );
    }
}

/// The DTS rendering in the docs describes the same node the FdtWriter
/// writes: dtc compiles it into a tree that decodes identically.
#[test]
fn the_dts_text_compiles_to_the_tree_the_fdt_writer_builds() {
    let dir = scratch();
    let layout = TpmLayout::new(Interface::Tis, DEFAULT_BASE_ADDRESS, 5).unwrap();
    let cells = CellSizes::TWO;
    let node = TisNode::new(&layout, cells).unwrap();
    let source = format!(
        "/dts-v1/;\n/ {{\n\tcompatible = \"linux,dummy-virt\";\n\t#address-cells = <2>;\n\
         \t#size-cells = <2>;\n\tmemory@40000000 {{\n\t\tdevice_type = \"memory\";\n\
         \t\treg = <0x0 0x40000000 0x0 0x10000000>;\n\t}};\n{}}};\n",
        node.to_dts()
    );
    let (from_text, messages) = dtc_compile(dir.path(), "from-text", &source);
    assert!(!messages.contains("Warning"), "dtc warns:\n{messages}");
    let (decoded_text, _) = dtc_decompile(dir.path(), "from-text", &from_text);
    let (decoded_writer, _) = dtc_decompile(dir.path(), "from-writer", &machine_fdt(&node, cells));
    assert_eq!(decoded_text, decoded_writer);
    assert!(decoded_text.contains("tpm@fed40000 {"), "{decoded_text}");
}
