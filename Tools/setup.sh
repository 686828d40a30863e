#!/usr/bin/env bash
# One command from a fresh Debian machine with Swift to a working Chorus: installs the system
# packages, builds the `chorus` tool in release mode, and runs the default job on a built-in
# default (the summary of a shipped Trainium2 system, a 2-rank collective benchmark over shared
# memory, and projections of all-reduce on a Trainium2 UltraServer and on 1,024 chips of the
# 65,536-chip cluster with the network simulator).
set -euo pipefail
cd "$(dirname "$0")/.."

Tools/install-dependencies.sh
swift build -c release --product chorus
echo
echo "== chorus topo show aws-trn2.48xlarge"
.build/release/chorus topo show aws-trn2.48xlarge
echo
echo "== chorus topo show aws-trn2-cluster-4096   (65,536 Trainium2 chips)"
.build/release/chorus topo show aws-trn2-cluster-4096
echo
echo "== chorus bench --ranks 2 --collective all-reduce,all-gather,reduce-scatter -b 8 -e 64M -f 8   (2 local ranks, shared memory)"
.build/release/chorus bench --ranks 2 --collective all-reduce,all-gather,reduce-scatter -b 8 -e 64M -f 8 -n 20 -w 5
echo
echo "== chorus sim --topology aws-trn2-ultraserver-64 -b 1M -e 1G -f 32 --compare-model --links 3   (projected, 64 chips)"
.build/release/chorus sim --topology aws-trn2-ultraserver-64 -b 1M -e 1G -f 32 --compare-model --links 3
echo
echo "== chorus sim --topology aws-trn2-cluster-4096 -b 1G -e 1G --links 3   (projected, all 65,536 chips on the EFA fabric)"
.build/release/chorus sim --topology aws-trn2-cluster-4096 -b 1G -e 1G --compare-model --links 3
echo
echo "The tool is at .build/release/chorus; 'chorus --help' lists the subcommands."
