#!/usr/bin/env bash
# Checks formatting and lints, then runs every test of the workspace: unit tests, integration tests and the lab tests (real
# namespaces, veths, FRR, BIRD and GoBGP). Needs root. Installs the Debian packages it needs
# when they are missing, builds, runs, and then checks that the tests left no namespace behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

prepare

# What the workspace declares is enforced: formatting, and clippy with every warning an error
# (unwrap_used = "deny" and the rest of [workspace.lints]).
say "cargo fmt --all -- --check"
cargo fmt --all -- --check || die "the code is not formatted: run  cargo fmt --all"
say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# Lab tests run the project's binaries inside their nodes: build them all first.
say "cargo build --workspace --bins"
cargo build --workspace --bins

labs_before=$(ip netns list | awk '{print $1}' | grep -E '^(clab-|tartanlab-)' | sort || true)
if cargo nextest --version >/dev/null 2>&1; then
  say "cargo nextest run --workspace"
  cargo nextest run --workspace --no-fail-fast
else
  say "cargo test --workspace (cargo-nextest not found)"
  cargo test --workspace --no-fail-fast
fi

labs_after=$(ip netns list | awk '{print $1}' | grep -E '^(clab-|tartanlab-)' | sort || true)
leaked=$(comm -13 <(echo "$labs_before") <(echo "$labs_after") | grep . || true)
if [ -n "$leaked" ]; then
  die "the tests left network namespaces behind:
$leaked"
fi
say "all tests passed; no lab left behind"
