#!/usr/bin/env bash
# Runs vtpm's whole test suite on a fresh machine: installs what the tests
# need (swtpm from Debian's packages, for the swtpm backend tests), then
# runs every test of the workspace, doctests included.
set -euo pipefail
cd "$(dirname "$0")/.."

need_swtpm() { ! command -v swtpm >/dev/null 2>&1 || ! command -v swtpm_setup >/dev/null 2>&1; }
if need_swtpm; then
  echo "test.sh: swtpm is missing; installing Debian's swtpm and swtpm-tools" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq swtpm swtpm-tools >/dev/null
fi
swtpm --version >&2

cargo test --workspace --locked --no-fail-fast "$@"
