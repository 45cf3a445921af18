#!/usr/bin/env bash
# Runs vtpm's whole test suite on a fresh machine: installs what the tests
# need (Debian packages of the real components below), then
# runs every test of the workspace, doctests included.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive as real components: swtpm (the swtpm
# backend's oracle), ACPICA's disassembler and dtc (they decode vtpm-acpi's
# tables and device-tree node), tpm2-tools (real clients of `vtpm serve`).
missing=()
command -v swtpm >/dev/null 2>&1 || missing+=(swtpm)
command -v swtpm_setup >/dev/null 2>&1 || missing+=(swtpm-tools)
command -v iasl >/dev/null 2>&1 || missing+=(acpica-tools)
command -v dtc >/dev/null 2>&1 || missing+=(device-tree-compiler)
# QEMU booting Debian's own kernel with a busybox initramfs: the guest's
# Linux TPM drivers are the client of the QEMU tests.
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
ls /boot/vmlinuz-* >/dev/null 2>&1 || missing+=(linux-image-amd64)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
command -v tpm2_getrandom >/dev/null 2>&1 || missing+=(tpm2-tools)
ldconfig -p | grep -q libtss2-tcti-mssim || missing+=(libtss2-tcti-mssim0)
ldconfig -p | grep -q libtss2-tcti-swtpm || missing+=(libtss2-tcti-swtpm0)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing Debian's ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
swtpm --version >&2

cargo test --workspace --locked --no-fail-fast "$@"
