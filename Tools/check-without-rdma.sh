#!/usr/bin/env bash
# Builds Chorus with its default traits disabled (no RDMA transports: what a machine without the
# libfabric and libibverbs headers builds) in a separate build folder, and checks that the
# result runs a job and refuses the RDMA transports saying why. CI runs it after `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build/without-rdma
swift build --disable-default-traits --scratch-path "$scratch" --product chorus
chorus="$scratch/debug/chorus"

out=$("$chorus" run -n 2 -- "$chorus" hello --check)
echo "$out"
echo "$out" | grep -q "rank 0 of 2: transport shm" || { echo "check-without-rdma: the job did not run over shared memory" >&2; exit 1; }

for transport in ofi verbs; do
  if err=$("$chorus" bench --ranks 2 --transport "$transport" -b 8 -e 8 2>&1); then
    echo "check-without-rdma: --transport $transport ran in a build without RDMA transports" >&2; exit 1
  fi
  echo "$err" | grep -q "built without the package's RDMA trait" || { echo "check-without-rdma: unexpected error for $transport: $err" >&2; exit 1; }
done
echo "check-without-rdma: ok (a build without the RDMA trait runs jobs and refuses ofi and verbs saying why)"
