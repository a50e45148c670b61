# Shared by scripts/demo.sh, scripts/demo-bgp.sh and scripts/test.sh: root, Debian packages, cargo.
# shellcheck shell=bash

# Debian packages the labs need: routing daemons that nodes run, tools the tests call.
# containernetworking-plugins: the reference `host-local` IPAM of `tartanlab bench ipam`.
# podman, runc, busybox-static: podman as a real runtime on lab hosts (labs/tests/podman.rs).
# etcd-server: real etcd members for the datastore tests, `bench ipam --datastore etcd` and labs.
TARTAN_PACKAGES=(iproute2 bird2 frr gobgpd iputils-ping util-linux procps containernetworking-plugins socat nftables podman runc busybox-static etcd-server)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [ "$(id -u)" -eq 0 ] || die "$(basename "$0") needs root (network namespaces, veths, mounts): run  sudo $0"
}

# Installs whichever of TARTAN_PACKAGES is missing.
ensure_packages() {
  local missing=() p
  for p in "${TARTAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    without_service_starts apt-get install -y -q "${missing[@]}"
  fi
}

# Runs a command with Debian's service starts refused, so installing frr or bird2 never starts
# a daemon in the machine's own network namespace (labs run their own copies in nodes).
without_service_starts() {
  local policy=/usr/sbin/policy-rc.d
  if [ -e "$policy" ]; then "$@"; return; fi
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  local rc=0
  "$@" || rc=$?
  rm -f "$policy"
  return "$rc"
}

# What both scripts need before they build: root, the packages, cargo.
prepare() {
  require_root
  ensure_packages
  find_cargo
}

# Finds cargo even under sudo, where root's PATH lacks the user's ~/.cargo/bin.
find_cargo() {
  if command -v cargo >/dev/null 2>&1; then return; fi
  local d
  for d in "${CARGO_HOME:-}/bin" "${SUDO_USER:+$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin}" /root/.cargo/bin; do
    if [ -n "$d" ] && [ -x "$d/cargo" ]; then export PATH="$d:$PATH"; return; fi
  done
  die "cargo not found: install Rust 1.85 or newer with rustup (https://rustup.rs)"
}
