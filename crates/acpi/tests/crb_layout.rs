//! The firmware descriptions point where the CRB device model answers.

use vtpm_acpi::{
    AcpiDevice, Interface, Tpm2Table, TpmLayout, CRB_CONTROL_AREA_OFFSET, DEFAULT_BASE_ADDRESS,
    LOCALITY_PAGE_SIZE, MAX_LOCALITIES,
};
use vtpm_crb::spec;

#[test]
fn the_pc_layout_matches_the_crb_device_models_register_map() {
    assert_eq!(DEFAULT_BASE_ADDRESS, spec::DEFAULT_BASE_ADDRESS);
    assert_eq!(LOCALITY_PAGE_SIZE, spec::LOCALITY_PAGE_SIZE);
    assert_eq!(MAX_LOCALITIES, spec::MAX_LOCALITIES);
    assert_eq!(CRB_CONTROL_AREA_OFFSET, spec::reg::CTRL_REQ);
}

#[test]
fn the_tpm2_table_and_crs_cover_the_crb_device_models_pages() {
    let layout = TpmLayout::pc(Interface::Crb);
    let table = Tpm2Table::new(layout).to_bytes();
    let control_area = u64::from_le_bytes(table[40..48].try_into().unwrap());
    assert_eq!(
        control_area,
        spec::DEFAULT_BASE_ADDRESS + spec::reg::CTRL_REQ
    );
    let device = AcpiDevice::new(&layout).unwrap();
    assert_eq!(u64::from(device.base()), spec::DEFAULT_BASE_ADDRESS);
    assert_eq!(
        u64::from(device.length()),
        u64::from(spec::MAX_LOCALITIES) * spec::LOCALITY_PAGE_SIZE
    );
}
