#!/usr/bin/env bash
# netns-rsh.sh -- a remote-shell agent that "logs into" the namespace hosts of netns-hosts.sh,
# for launchers that start ranks on other hosts over rsh/ssh:
#
#   mpirun --hostfile HOSTS --mca plm_rsh_agent Tools/netns-rsh.sh ...    (Open MPI)
#   mpiexec.hydra -launcher ssh -launcher-exec Tools/netns-rsh.sh ...     (MPICH)
#
# Called as `netns-rsh.sh [ssh options] HOST COMMAND...`: HOST is a host's address as
# netns-hosts.sh gave it (`netns-hosts.sh ip I`); COMMAND runs inside that host's namespace on
# this machine. CHORUS_NETNS_PREFIX must match the one the hosts were made with.
set -euo pipefail
prefix=${CHORUS_NETNS_PREFIX:-chorus-test}

# Drop the options an ssh-style caller adds (-x, -T, -o Name=value, -l user, -p port ...).
while [ $# -gt 0 ]; do
  case "$1" in
    -o | -l | -p | -i | -F) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "netns-rsh.sh: usage: netns-rsh.sh [options] HOST COMMAND..." >&2; exit 255; }
target=$1
shift

for ns in $(ip netns list | awk '{print $1}'); do
  case "$ns" in "$prefix"-h[0-9]*) ;; *) continue ;; esac
  if ip -n "$ns" -4 -o addr show | awk '{print $4}' | cut -d/ -f1 | grep -qx "$target"; then
    # The remote command arrives as one shell string, as ssh passes it.
    exec ip netns exec "$ns" /bin/sh -c "$*"
  fi
done
echo "netns-rsh.sh: no ${prefix}-h* host has the address '$target' (is CHORUS_NETNS_PREFIX right?)" >&2
exit 255
