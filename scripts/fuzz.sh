#!/usr/bin/env bash
# Builds the fuzz targets and runs each one for a while: the BGP codec and streaming framer
# (bgp/fuzz, seeded with the real FRR, BIRD and GoBGP messages in
# bgp/tests/captures/messages.txt), the BFD packet decoder and session (bgp/fuzz), felix's netlink parsers and the selector parser, and the
# API's request decoding (any method, path, query and body through the router; felix/fuzz).
#
#   scripts/fuzz.sh            # 30 s per target (what CI runs)
#   scripts/fuzz.sh 3600       # an hour per target
#
# Installs cargo-fuzz when it is missing. Runs on stable Rust without sanitizers (`-s none`)
# but with debug assertions on (`-a`), so overflow and slice bugs still abort. A crash leaves
# its input in bgp/fuzz/artifacts/<target>/; replay it with
#   cd bgp && cargo fuzz run -O -a -s none <target> fuzz/artifacts/<target>/crash-...
# (felix's targets: the same from felix/).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
find_cargo

seconds=${1:-30}
case "$seconds" in '' | *[!0-9]*) die "usage: $0 [SECONDS_PER_TARGET]" ;; esac
targets=(decode round_trip framer)

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

# One seed file per captured message, each behind the byte that chooses the negotiated codec:
# 0x01 (four-octet AS) for every message, 0x00 (two-octet AS) too for the sessions without
# capabilities.
seed() {
    local dir=$1 n=0 session hex
  [ -f tests/captures/messages.txt ] || die "bgp/tests/captures/messages.txt is missing"
  mkdir -p "$dir"
  while read -r session _ _ hex; do
    n=$((n + 1))
    printf '%b' "\\x01$(sed 's/../\\x&/g' <<<"$hex")" >"$dir/capture-$n-4"
    printf '%b' "\\x00$(sed 's/../\\x&/g' <<<"$hex")" >"$dir/capture-$n-2"
  done < <(grep -v "^#" tests/captures/messages.txt)
}

# Builds the targets of the crate in directory $1, then runs each of the rest of the arguments.
fuzz_crate() {
  local dir=$1 t log
  shift
  say "cargo fuzz build in $dir (release, debug assertions, no sanitizer)"
  (cd "$dir" && cargo fuzz build -O -a -s none)
  for t in "$@"; do
    say "fuzzing $dir $t for ${seconds}s"
    log="fuzz/$t.log"
    if ! (cd "$dir" && cargo fuzz run -O -a -s none "$t" -- -max_total_time="$seconds" \
      -print_final_stats=1 >"$log" 2>&1); then
      tail -n 40 "$dir/$log" >&2
      die "fuzz target $t failed (whole log: $dir/$log; input: $dir/fuzz/artifacts/$t/)"
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$dir/$log" || true
  done
}

for t in "${targets[@]}"; do
  (cd bgp && seed "fuzz/corpus/$t")
done
mkdir -p bgp/fuzz/corpus/bfd
# An FRR control packet (Up, 300 ms x 3) behind a 10 ms step, and a Down with no your-disc.
printf '\x0a\x00\x20\xc0\x03\x18\x00\x00\x00\x07\x00\x00\x12\x34\x00\x04\x93\xe0\x00\x04\x93\xe0\x00\x00\xc3\x50' \
  >bgp/fuzz/corpus/bfd/frr-up
printf '\x01\x00\x20\x40\x03\x18\x00\x00\x00\x07\x00\x00\x00\x00\x00\x0f\x42\x40\x00\x04\x93\xe0\x00\x00\x00\x00' \
  >bgp/fuzz/corpus/bfd/down
fuzz_crate bgp "${targets[@]}" bfd
# The API's request decoding runs against a real sled datastore made for the run.
api_store=$(mktemp -d /tmp/tartan-fuzz-api.XXXXXX)
trap 'rm -rf "$api_store"' EXIT
mkdir -p felix/fuzz/corpus/api_request
printf '\x01v1/ippools\n{"apiVersion":"tartan/v1","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.9.0.0/16"}}' \
  >felix/fuzz/corpus/api_request/pool
printf '\x01v1/ipam/allocate\n{"node":"n1","handle":"h","ipv4":1,"attributes":{"a":"b"}}' \
  >felix/fuzz/corpus/api_request/allocate
printf '\x00v1/watch?since=0&kinds=ippools,nodes\n' >felix/fuzz/corpus/api_request/watch
printf '\x00v1/ippools?labelSelector=a%%20%%3D%%3D%%20%%27b%%27\n' >felix/fuzz/corpus/api_request/list
printf '\x03v1/bgppeers/tor\n{"spec":{"password":{"value":"(redacted)"}}}' >felix/fuzz/corpus/api_request/patch
export TARTAN_FUZZ_DIR=$api_store
fuzz_crate felix netlink selector api_request
say "fuzzing passed"
