#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a short while (FUZZ_SECONDS,
# 60 by default), starting from the committed seed corpus in
# fuzz/corpus/<target>. New inputs go to a scratch folder, so the committed
# corpus only changes by hand. A crash, a leak or an out-of-memory fails the
# run; libFuzzer leaves the input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi
# libFuzzer needs nightly flags: use the nightly toolchain where rustup has
# one, else let stable accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

for target in $("${fuzz[@]}" list); do
  mkdir -p "corpus/$target"
  scratch=$(mktemp -d)
  echo "fuzz.sh: $target for ${seconds}s" >&2
  log="$scratch/log"
  if ! "${fuzz[@]}" run "$target" "$scratch" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $target FAILED" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz.sh: $target ok, $runs runs in ${seconds}s" >&2
  rm -rf "$scratch"
done
