//! rust-vmm `vm-device` glue: vtpm devices as `MutDeviceMmio`, and guest
//! MMIO through an `IoManager`.

use vm_device::bus::{MmioAddress, MmioAddressOffset};
use vm_device::device_manager::{IoManager, MmioManager};
use vm_device::MutDeviceMmio;
use vtpm_guest::Mmio;

/// A vtpm MMIO target as a `vm_device::MutDeviceMmio`: offsets within the
/// registered range go to the device unchanged (the range's base is
/// locality 0's page). Register `Arc::new(Mutex::new(VmDevice(..)))` on an
/// `IoManager`; vm-device provides `DeviceMmio` for the `Mutex`.
///
/// For CRB, wrap the platform's [`vtpm_platform::CrbBus`] (commands run on
/// its worker, so a vCPU never waits for the TPM); for TIS, an
/// [`InlineTis`](crate::InlineTis).
#[derive(Debug, Clone)]
pub struct VmDevice<M: Mmio>(pub M);

impl<M: Mmio> MutDeviceMmio for VmDevice<M> {
    fn mmio_read(&mut self, _base: MmioAddress, offset: MmioAddressOffset, data: &mut [u8]) {
        self.0.read(offset, data);
    }

    fn mmio_write(&mut self, _base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
        self.0.write(offset, data);
    }
}

/// Guest MMIO through an `IoManager`, as a VMM dispatches a VM exit:
/// `offset` is relative to `base` (the TPM's locality 0 page). An access
/// no device claims reads all ones and drops writes, as on a bus with
/// nothing there.
pub struct IoManagerMmio<'a> {
    /// The manager the devices are registered on.
    pub manager: &'a IoManager,
    /// Guest-physical address of the TPM's locality 0 page.
    pub base: u64,
}

impl Mmio for IoManagerMmio<'_> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let addr = MmioAddress(self.base.wrapping_add(offset));
        if self.manager.mmio_read(addr, data).is_err() {
            data.fill(0xFF);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let addr = MmioAddress(self.base.wrapping_add(offset));
        let _unclaimed = self.manager.mmio_write(addr, data);
    }
}
