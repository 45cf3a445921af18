#!/bin/sh
# PID 1 of the test's initramfs: report what the guest kernel found as
# "vtpm-guest: " lines on the serial console, then power off. The host test
# parses these lines; a missing value prints empty, never a made-up one.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t securityfs securityfs /sys/kernel/security
# The kernel's built-in initramfs normally provides /dev/console; take it
# from devtmpfs so the markers reach the serial line either way.
exec >/dev/console 2>&1
# Keep kernel messages from splitting marker lines.
dmesg -n 1

say() { echo "vtpm-guest: $*"; }

if [ -c /dev/tpm0 ]; then say dev_tpm0=present; else say dev_tpm0=absent; fi
if [ -c /dev/tpmrm0 ]; then say dev_tpmrm0=present; else say dev_tpmrm0=absent; fi
say "driver=$(basename "$(readlink /sys/class/tpm/tpm0/device/driver)")"
say "tpm_version_major=$(cat /sys/class/tpm/tpm0/tpm_version_major)"
say "pcr_sha256_0=$(cat /sys/class/tpm/tpm0/pcr-sha256/0)"
# The firmware's event log, so the host can replay what SeaBIOS extended.
od -An -v -tx1 /sys/kernel/security/tpm0/binary_bios_measurements |
  while read -r line; do say "log $line"; done
dmesg | grep -i tpm | while read -r line; do say "dmesg $line"; done
say done
poweroff -f
