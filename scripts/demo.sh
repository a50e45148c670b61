#!/usr/bin/env bash
# The main job: Tartan's container fabric in one step. Builds Tartan, deploys
# containerlab/quickstart.clab.yml onto network namespaces — an API server and three hosts
# running `tartan node` in a node-to-node BGP mesh, each with two containers made by
# `tartan sandbox` — waits until every host's sessions are Established and every container has
# its IPv4 and IPv6 address, then prints the nodes, the BGP sessions, each host's routes, the
# IPAM and a ping matrix between all the containers. Needs root. Installs the Debian packages
# it needs when missing. The lab keeps running afterwards; the last lines say how to explore
# and remove it. The BGP speaker's labs with FRR, BIRD and GoBGP are scripts/demo-bgp.sh.
#
#   scripts/demo.sh           the API server on sled (containerlab/quickstart.clab.yml)
#   scripts/demo.sh --etcd    two API replicas on a three-member etcd cluster
#                             (containerlab/quickstart-etcd.clab.yml), then their health
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

prepare

say "building (release)"
cargo build --release -q -p tartan-labs -p tartan-cli
LAB=target/release/tartanlab
ETCD=0
case "${1:-}" in
  "") ;;
  --etcd) ETCD=1 ;;
  *) die "usage: $0 [--etcd]" ;;
esac
TOPO=containerlab/quickstart.clab.yml
LOGS=containerlab/clab-quickstart/
CTL_NODE=apiserver                     # where tartanctl runs (it finds the API by name)
if [ "$ETCD" -eq 1 ]; then
  TOPO=containerlab/quickstart-etcd.clab.yml
  LOGS=containerlab/clab-quickstart-etcd/
  CTL_NODE=host1                       # TARTAN_API names both replicas there
fi
HOSTS=(host1 host2 host3)              # the topology's hosts, two containers each
CONTAINERS=6
SESSIONS=$((2 * (${#HOSTS[@]} - 1)))   # an IPv4 and an IPv6 session to every other host
in_node() { "$LAB" exec -t "$TOPO" "$@"; }
ctl() { in_node "$CTL_NODE" -- tartanctl "$@"; }

say "deploying $TOPO"
"$LAB" deploy --reconfigure -t "$TOPO" >/dev/null   # its table is the "nodes" section below

# Prints the named columns of a `tartanctl get` table read on stdin, one row a line, `-` for an
# empty cell. The table is cut at its header's column offsets rather than split on blanks, so
# an empty cell cannot shift the cells after it.
columns() {
  awk -v want="$*" '
    NR == 1 {
      from = 1
      for (k = 1; k <= NF; k++) {
        start[k] = index(substr($0, from), $k) + from - 1
        col[$k] = k
        from = start[k] + length($k)
      }
      ncol = NF
      nwant = split(want, names, " ")
      next
    }
    {
      line = ""
      for (w = 1; w <= nwant; w++) {
        k = col[names[w]]
        s = ""
        if (k) s = k < ncol ? substr($0, start[k], start[k + 1] - start[k]) : substr($0, start[k])
        gsub(/^ +| +$/, "", s)
        line = line (w > 1 ? " " : "") (s == "" ? "-" : s)
      }
      print line
    }'
}

# The containers as the API records them, one line each, sorted by host: NAME HOST IPV4 IPV6.
workloads() {
  local table
  table=$(ctl get workloadendpoints) || return 1
  columns CONTAINER NODE IPS <<<"$table" | awk '{
    v4 = "-"; v6 = "-"
    n = split($3, ips, ",")
    for (j = 1; j <= n; j++) {
      sub(/\/.*/, "", ips[j])
      if (ips[j] ~ /:/) { if (v6 == "-") v6 = ips[j] }
      else if (ips[j] != "-" && v4 == "-") v4 = ips[j]
    }
    print $1, $2, v4, v6
  }' | sort -k2,2V -k1,1V
}

# Every host has reported its sessions, all Established (`tartanctl get nodestatus` prints
# `4/4 established` in its PEERS column).
sessions_up() {
  local status h
  status=$(ctl get nodestatus) || return 1
  for h in "${HOSTS[@]}"; do
    grep -Eq "^$h +.* $SESSIONS/$SESSIONS established\$" <<<"$status" || return 1
  done
}

# Every container exists with both of its addresses.
containers_up() {
  local w
  w=$(workloads) || return 1
  [ "$(awk '$1 != "-" && $2 != "-" && $3 != "-" && $4 != "-"' <<<"$w" | wc -l)" -eq "$CONTAINERS" ]
}

# Every host has installed a route via each other host, in both families.
routes_in() {
  local h family n
  for h in "${HOSTS[@]}"; do
    for family in -4 -6; do
      n=$(in_node "$h" -- ip "$family" route show proto 84 | grep -c ' via ' || true)
      [ "$n" -ge $((${#HOSTS[@]} - 1)) ] || return 1
    done
  done
}

# wait_until WHAT SECS CHECK: runs CHECK every half second until it succeeds; after SECS it
# dies, saying what it waited for and showing what the API server reports.
wait_until() {
  local what=$1 secs=$2 check=$3 deadline=$((SECONDS + $2))
  until "$check"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      {
        echo "what the API server reports now:"
        ctl get nodestatus || true
        ctl get workloadendpoints || true
      } >&2
      die "gave up after ${secs} s waiting until $what. The lab is still up; its logs are in $LOGS
  (each node's tartan.log, exec.log for the containers' \`tartan sandbox add\`, supervisor.log).
  Remove it with: sudo $LAB destroy -t $TOPO"
    fi
    sleep 0.5
  done
}

say "waiting for the BGP mesh, the containers and the routes"
wait_until "every host has $SESSIONS Established BGP sessions" 60 sessions_up
wait_until "all $CONTAINERS containers have an IPv4 and an IPv6 address" 60 containers_up
wait_until "every host routes the other hosts' blocks" 30 routes_in

section() { printf '\n\033[1m--- %s\033[0m\n' "$*"; }
section "nodes"
"$LAB" inspect -t "$TOPO"
section "BGP sessions: tartanctl node status"
ctl node status
section "each host's routes (proto 84: the agent's)"
declare -A HOST_ADDR
while read -r name v4 v6; do
  HOST_ADDR[$name]="${v4%/*}, ${v6%/*}"
done < <(ctl get nodes | columns NAME IPV4 IPV6)
for h in "${HOSTS[@]}"; do
  echo "$h (${HOST_ADDR[$h]:-not registered}):"
  { in_node "$h" -- ip route show proto 84; in_node "$h" -- ip -6 route show proto 84; } |
    sed 's/ *$//; s/^/  /'
done
section "the API over TLS (a certificate of the lab's CA, made at deploy time)"
api_url=$(in_node "$CTL_NODE" -- sh -c 'echo "$TARTAN_API"')
echo "TARTAN_API=$api_url TARTAN_CA_FILE=/etc/tartan/ca.pem (<lab-dir>/.tls/ca/ca.pem)"
in_node "$CTL_NODE" -- openssl x509 -noout -subject -enddate -in /etc/tartan/ca.pem 2>/dev/null |
  sed 's/^/  CA: /' || true
first_api=${api_url%%,*}
printf 'plain HTTP to %s: ' "${first_api/https:/http:}"
in_node "$CTL_NODE" -- tartanctl --api "${first_api/https:/http:}" get nodes >/dev/null 2>&1 &&
  echo "answered (unexpected)" || echo "refused, as it must be"
section "IPAM: tartanctl ipam show --show-blocks"
ctl ipam show --show-blocks
if [ "$ETCD" -eq 1 ]; then
  section "the control plane: two API replicas on three etcd members (/healthz)"
  for api in api1 api2; do
    printf '%s: ' "$api"
    in_node host1 -- curl -s --cacert /etc/tartan/ca.pem "https://$api:7180/healthz" || echo unreachable
    echo
  done
fi

mapfile -t WL < <(workloads)
section "containers"
printf '%-10s %-6s %-16s %s\n' CONTAINER HOST IPV4 IPV6
for w in "${WL[@]}"; do
  read -r name host v4 v6 <<<"$w"
  printf '%-10s %-6s %-16s %s\n' "$name" "$host" "$v4" "$v6"
done

# One echo request from a container (three tries, a second each): HOST CONTAINER ADDRESS.
pings() {
  local try
  [ "$3" != - ] || return 1
  for try in 1 2 3; do
    in_node "$1" -- tartan sandbox exec "$2" -- ping -c1 -W1 "$3" >/dev/null 2>&1 && return 0
  done
  return 1
}

section "ping matrix: rows ping columns, IPv4/IPv6 (ok: a reply, --: none)"
width=5 label=0   # right-aligned cells: no trailing blanks
for w in "${WL[@]}"; do
  read -r name host _ <<<"$w"
  [ "${#name}" -le "$width" ] || width=${#name}
  l="$name ($host)"
  [ "${#l}" -le "$label" ] || label=${#l}
done
printf '%*s' "$label" ""
for w in "${WL[@]}"; do read -r name _ <<<"$w"; printf '  %*s' "$width" "$name"; done
echo
failed=0 total=0
for src in "${WL[@]}"; do
  read -r sname shost _ <<<"$src"
  printf '%-*s' "$label" "$sname ($shost)"
  for dst in "${WL[@]}"; do
    read -r _ _ dv4 dv6 <<<"$dst"
    cell=""
    for addr in "$dv4" "$dv6"; do
      total=$((total + 1))
      if pings "$shost" "$sname" "$addr"; then r=ok; else r=--; failed=$((failed + 1)); fi
      cell+="${cell:+/}$r"
    done
    printf '  %*s' "$width" "$cell"
  done
  echo
done
if [ "$failed" -eq 0 ]; then
  echo "all $total pings answered"
else
  echo "$failed of $total pings got no reply; logs are in $LOGS"
fi

read -r first first_host first_v4 first_v6 <<<"${WL[0]}"
read -r far_name far_host far_v4 _ <<<"${WL[-1]}"
cat <<MSG

The lab keeps running. Try:
$( [ "$ETCD" -eq 1 ] && printf '%s\n' "  sudo $LAB exec -t $TOPO etcd1 -- pkill -KILL -x etcd; sudo $LAB exec -t $TOPO api1 -- pkill -KILL -x tartan    # containers still start:" )  sudo $LAB exec -t $TOPO host1 -- tartan sandbox add web7
  sudo $LAB exec -t $TOPO host1 -- tartan sandbox exec web7 -- ping -c3 $far_v4    # $far_name on $far_host
  sudo $LAB exec -t $TOPO $far_host -- tartan sandbox exec $far_name -- ping -c3 $first_v6    # $first on $first_host
  sudo $LAB exec -t $TOPO $far_host -- tartan sandbox exec $far_name -- ip route    # via 169.254.1.1
  sudo $LAB exec -t $TOPO host1 -- tartan sandbox list
  sudo $LAB exec -t $TOPO host1 -- ip route show proto 84
  sudo $LAB exec -t $TOPO host1 -- tartanctl ipam show --ip $first_v4    # $first's
  sudo $LAB exec -t $TOPO host1 -- tartanctl ipam show
  sudo $LAB exec -t $TOPO host1 -- tartanctl node status
  sudo $LAB exec -t $TOPO host1 -- tartan sandbox del web7
Logs: $LOGS (each node's tartan.log). Remove the lab with:
  sudo $LAB destroy -t $TOPO
The BGP speaker against FRR, BIRD and GoBGP: sudo scripts/demo-bgp.sh
MSG
[ "$failed" -eq 0 ] || exit 1
