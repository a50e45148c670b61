#!/usr/bin/env bash
# Records real BGP traffic between FRR 8.4, BIRD 2 and GoBGP 3.10 in a tartanlab lab and writes
# it to messages.txt, the byte vectors of tests/captures.rs. Needs root, tcpdump and a built
# tartanlab (cargo build -p tartan-labs). Run it again to refresh the vectors.
set -euo pipefail
cd "$(dirname "$0")"
TL=${TARTANLAB:-../../../target/debug/tartanlab}
TOPO=lab/capture.clab.yml
export CLAB_LABDIR_BASE=$(mktemp -d)
PCAP=$CLAB_LABDIR_BASE/clab-bgpcap/pcap
mkdir -p "$PCAP"
"$TL" deploy -q --reconfigure -t "$TOPO" >/dev/null
cleanup() { "$TL" destroy -q -t "$TOPO" >/dev/null || true; rm -rf "$CLAB_LABDIR_BASE"; }
trap cleanup EXIT
x() { "$TL" exec -t "$TOPO" "$@"; }
vtysh() { x frr -- vtysh "$@"; }

for i in eth1 eth2; do
  x frr -- sh -c "tcpdump -i $i -U -s 0 -Z root -w /pcap/$i.pcap tcp port 179 >/dev/null 2>&1 &"
done
until [ -s "$PCAP/eth1.pcap" ] && [ -s "$PCAP/eth2.pcap" ]; do sleep 0.1; done

# Bring the sessions up: OPENs, capabilities, the initial tables.
x bird -- birdc enable frr4 >/dev/null
x bird -- birdc enable frr6 >/dev/null
vtysh -c 'conf t' -c 'router bgp 65001' -c 'no neighbor 10.0.13.3 shutdown'
established() { [ "$(vtysh -c 'show bgp summary json' | grep -c '"state":"Established"')" -ge 3 ]; }
for _ in $(seq 100); do established && break; sleep 0.2; done
established || { echo "sessions did not come up" >&2; exit 1; }
sleep 4 # a keepalive each way, and the tables with their End-of-RIB markers

# A route refresh (BIRD answers with Begin/End of RIB refresh), a withdrawal, a shutdown.
vtysh -c 'clear bgp ipv4 unicast 10.0.12.2 soft in'
sleep 1
vtysh -c 'conf t' -c 'router bgp 65001' -c 'address-family ipv4 unicast' -c 'no network 198.51.100.0/25'
sleep 1
vtysh -c 'conf t' -c 'router bgp 65001' -c 'neighbor 10.0.12.2 shutdown message "capture done"'
sleep 1
x frr -- pkill -INT tcpdump
sleep 0.5

python3 extract.py "$PCAP/eth1.pcap" "$PCAP/eth2.pcap" > messages.txt.new
mv messages.txt.new messages.txt
echo "wrote $(grep -vc '^#' messages.txt) messages to $(pwd)/messages.txt"
