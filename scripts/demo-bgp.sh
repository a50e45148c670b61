#!/usr/bin/env bash
# The BGP labs: builds Tartan, deploys containerlab/routers.clab.yml — FRR, BIRD and GoBGP in a
# ring, eBGP on every link — onto network namespaces, waits for BGP to converge and prints the
# lab's state; then deploys containerlab/bgp-interop.clab.yml — Tartan's own BGP speaker peered
# with FRR, BIRD, GoBGP, a two-octet AS speaker and an iBGP FRR — and shows both ends. This is
# the speaker's interop demo; the fabric's (tartan node, CNI, containers) is scripts/demo.sh.
# Needs root. Installs the Debian packages it needs when missing. The labs keep running
# afterwards; the last lines say how to explore and remove them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

prepare

say "building (release)"
cargo build --release -q -p tartan-labs -p tartan-cli
LAB=target/release/tartanlab
TOPO=containerlab/routers.clab.yml
in_node() { "$LAB" exec -t "$TOPO" "$@"; }

say "deploying $TOPO"
"$LAB" deploy --reconfigure -t "$TOPO"

say "waiting for BGP to converge"
# (grep reads all of its input: an early exit would kill the writer with SIGPIPE under pipefail.)
converged() {
  [ "$(in_node frr -- vtysh -c 'show bgp summary json' | grep -c '"state":"Established"')" -eq 2 ] &&
  [ "$(in_node bird -- birdc show protocols | grep -c Established)" -eq 2 ] &&
  [ "$(in_node gobgp -- gobgp neighbor | grep -c Establ)" -eq 2 ] &&
  in_node frr -- ip route show proto bgp | grep -F 10.255.0.2 >/dev/null &&
  in_node bird -- ip route show proto bird | grep -F 10.255.0.1 >/dev/null
}
for _ in $(seq 1 60); do converged && break; sleep 0.5; done
converged || die "BGP did not converge within 30 s; logs are in containerlab/clab-routers/"

section() { printf '\n\033[1m--- %s\033[0m\n' "$*"; }
section "nodes"
"$LAB" inspect -t "$TOPO"
section "frr: show bgp summary"
in_node frr -- vtysh -c 'show bgp summary' | sed -n '/^Neighbor/,$p'
section "bird: show protocols"
in_node bird -- birdc show protocols
section "gobgp: neighbor / global rib"
in_node gobgp -- gobgp neighbor
in_node gobgp -- gobgp global rib
section "kernel routes learned over BGP (frr: proto bgp, bird: proto bird)"
in_node frr -- ip route show proto bgp
in_node bird -- ip route show proto bird
section "data plane: frr's loopback to bird's"
in_node frr -- ping -c 3 -W 1 -I 10.255.0.1 10.255.0.2

BGP_TOPO=containerlab/bgp-interop.clab.yml
in_bgp() { "$LAB" exec -t "$BGP_TOPO" "$@"; }
say "deploying $BGP_TOPO (Tartan's BGP speaker and five peers)"
"$LAB" deploy --reconfigure -t "$BGP_TOPO"
say "waiting for Tartan's seven sessions"
tartan_up() {
  [ "$(in_bgp tartan -- tartan bgp status | grep -c ' Established ')" -eq 7 ] &&
  in_bgp tartan -- tartan bgp status | grep -F '8 IPv4 and 3 IPv6 prefixes' >/dev/null &&
  in_bgp frr -- vtysh -c 'show bgp ipv4 unicast 10.1.0.0/24' | grep -F 4200000001 >/dev/null
}
for _ in $(seq 1 60); do tartan_up && break; sleep 0.5; done
tartan_up || die "Tartan's sessions did not all come up within 30 s; logs are in containerlab/clab-bgp-interop/"
section "tartan: tartan bgp status"
in_bgp tartan -- tartan bgp status
section "tartan: tartan bgp rib"
in_bgp tartan -- tartan bgp rib
section "frr: Tartan's route, as FRR sees it"
in_bgp frr -- vtysh -c 'show bgp ipv4 unicast 10.1.0.0/24'
section "bird: Tartan's IPv6 route over the link-local session"
in_bgp bird -- birdc show route all fd00:1::/48

cat <<MSG

The labs keep running. Try:
  sudo $LAB exec -t $TOPO frr -- vtysh -c 'show bgp ipv4 unicast'
  sudo $LAB exec -t $TOPO bird -- birdc show route all
  sudo $LAB exec -t $TOPO frr -- ip link set eth1 down     # traffic then crosses gobgp
  sudo $LAB exec -t $BGP_TOPO tartan -- tartan bgp rib --family ipv6-unicast
  sudo $LAB exec -t $BGP_TOPO gobgp -- gobgp global rib
  sudo $LAB graph -t $BGP_TOPO --format mermaid
Remove them with:
  sudo $LAB destroy -t $TOPO
  sudo $LAB destroy -t $BGP_TOPO
MSG
