#!/usr/bin/env bash
# netns-hosts.sh -- test "hosts" for multi-host runs: network namespaces joined by a bridge
# that lives in a namespace of its own, so nothing touches the caller's network.
#
#   netns-hosts.sh up K        create hosts 1..K (host I has address $SUBNET.I/24 on eth0)
#   netns-hosts.sh down        stop the processes inside them and delete them (idempotent)
#   netns-hosts.sh ns I        print host I's namespace name
#   netns-hosts.sh ip I        print host I's address
#   netns-hosts.sh exec I CMD  run CMD inside host I
#   netns-hosts.sh shape RATE  cap every host at RATE each way (tc tbf, e.g. 10gbit): on its
#                              eth0 (what it sends) and on its bridge port (what it receives)
#   netns-hosts.sh unshape     remove the caps
#
# This kernel has no netem, so no delay is emulated; only rate.
#
# CHORUS_NETNS_PREFIX names the namespaces (<prefix>-br, <prefix>-h1 ...; give each run its
# own), CHORUS_NETNS_SUBNET the first three octets of the /24 (default 10.213.0). Needs root.
set -euo pipefail

prefix=${CHORUS_NETNS_PREFIX:-chorus-test}
subnet=${CHORUS_NETNS_SUBNET:-10.213.0}
bridge_ns="$prefix-br"

fail() { echo "netns-hosts.sh: $*" >&2; exit 1; }
host_ns() { echo "$prefix-h$1"; }
ours() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-(br|h[0-9]+)\$" || true; }

down() {
  local ns signal
  for signal in TERM KILL; do
    for ns in $(ours); do
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -s "$signal" 2>/dev/null || true
    done
    [ "$signal" = TERM ] && sleep 0.2
  done
  for ns in $(ours); do ip netns del "$ns" 2>/dev/null || true; done
  [ -z "$(ours)" ] || fail "could not delete: $(ours)"
}

up() {
  local k=$1 i
  [ "$(id -u)" = 0 ] || fail "needs root (ip netns)"
  down
  ip netns add "$bridge_ns"
  ip -n "$bridge_ns" link add br0 type bridge
  ip -n "$bridge_ns" link set br0 up
  for i in $(seq 1 "$k"); do
    ip netns add "$(host_ns "$i")"
    ip link add "v$i" netns "$bridge_ns" type veth peer name eth0 netns "$(host_ns "$i")"
    ip -n "$bridge_ns" link set "v$i" master br0
    ip -n "$bridge_ns" link set "v$i" up
    ip -n "$(host_ns "$i")" addr add "$subnet.$i/24" dev eth0
    ip -n "$(host_ns "$i")" link set eth0 up
    ip -n "$(host_ns "$i")" link set lo up
  done
}

# Host indices that exist, from the namespace names.
hosts() { ip netns list | awk '{print $1}' | sed -n "s/^${prefix}-h\([0-9][0-9]*\)$/\1/p" | sort -n; }

shape() {
  local rate=$1 i
  for i in $(hosts); do
    # A token bucket on each direction of the host's link; burst large enough for GSO packets.
    tc -n "$(host_ns "$i")" qdisc replace dev eth0 root tbf rate "$rate" burst 256kb latency 2ms
    tc -n "$bridge_ns" qdisc replace dev "v$i" root tbf rate "$rate" burst 256kb latency 2ms
  done
}

unshape() {
  local i
  for i in $(hosts); do
    tc -n "$(host_ns "$i")" qdisc del dev eth0 root 2>/dev/null || true
    tc -n "$bridge_ns" qdisc del dev "v$i" root 2>/dev/null || true
  done
}

case "${1:-}" in
  up) up "${2:?usage: up K}" ;;
  shape) shape "${2:?usage: shape RATE (e.g. 10gbit)}" ;;
  unshape) unshape ;;
  down) down ;;
  ns) host_ns "${2:?usage: ns I}" ;;
  ip) echo "$subnet.${2:?usage: ip I}" ;;
  exec) i=${2:?usage: exec I CMD}; shift 2; exec ip netns exec "$(host_ns "$i")" "$@" ;;
  *) fail "usage: netns-hosts.sh up K | down | shape RATE | unshape | ns I | ip I | exec I CMD..." ;;
esac
