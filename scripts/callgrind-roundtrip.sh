#!/usr/bin/env bash
# Host instructions per round trip (8 KiB command + 8 KiB response, window
# 3968, echo backend inline), trapped window vs window in guest RAM,
# counted by callgrind: two runs of different lengths, difference divided
# by the extra round trips, so process setup cancels out. Instruction
# counts repeat on a loaded machine, unlike times.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --locked -p vtpm-platform --example roundtrip
bin=target/release/examples/roundtrip
short=10
long=110
instructions() { # mode trips
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-8s %s\n' mode instructions_per_round_trip
for mode in trapped ram; do
    a=$(instructions "$mode" "$short")
    b=$(instructions "$mode" "$long")
    printf '%-8s %d\n' "$mode" $(( (b - a) / (long - short) ))
done
