#!/usr/bin/env python3
"""Shared memory, 2 ranks: Chorus against Open MPI and MPICH, side by side, in rounds.

Each round runs, one after another on this host:
  - a cache-line ping-pong between CPUs 0 and 1 (how fast the cores hand data over now);
  - `chorus bench --ranks 2` at 64 and 256 MiB (all-reduce, all-gather, reduce-scatter), with
    ordinary buffers and with shared buffers (-R 1), and the 8-byte all-reduce;
  - `mpi_coll_perf` from the anchors (../shared/anchors) under Open MPI (btl vader, bound to
    cores) and MPICH, the same sizes and the 8-byte all-reduce over as many iterations.
Then it prints each round's busbw (GB/s, out of place), Chorus's ratio to the better MPI (to
Open MPI for all-reduce), and against the single-host targets, in how many rounds each was met.

The host's load and core-to-core speed move these figures from minute to minute, so compare
within a round, never across runs.

    Tools/side-by-side.py [--rounds N] [--chorus PATH] [--anchors DIR]

Needs cc, mpicc.openmpi and mpirun.openmpi (openmpi-bin, libopenmpi-dev), and for MPICH
mpicc.mpich and mpirun.mpich (mpich, libmpich-dev); an MPI that is missing is skipped, and
said so. Builds Chorus in release if --chorus is not given, and the anchors into a temporary
directory (removed at the end).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (64 << 20, 256 << 20)
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter")
MPI_NAMES = {"allreduce": "all-reduce", "allgather": "all-gather", "reduce_scatter": "reduce-scatter"}
# Issue targets: Chorus busbw at least this many times the reference (all-reduce: Open MPI;
# the others: the better of Open MPI and MPICH), and the 8-byte all-reduce within 1.0 us.
TARGETS = {"all-reduce": 2.5, "all-gather": 1.2, "reduce-scatter": 2.0}
SMALL_TARGET_US = 1.0
SMALL_WARMUP = 200_000
TIMEOUT_S = 600


def fail(message):
    print(f"side-by-side: {message}", file=sys.stderr)
    sys.exit(1)


def run(command, timeout=TIMEOUT_S):
    """Runs command; returns its standard output, or None (saying why) if it failed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"side-by-side: {' '.join(command)} took more than {timeout} s; skipped", file=sys.stderr)
        return None
    except OSError as error:
        print(f"side-by-side: cannot run {command[0]}: {error}", file=sys.stderr)
        return None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        print(f"side-by-side: {' '.join(command)} exited with {done.returncode}: {' / '.join(tail)}", file=sys.stderr)
        return None
    return done.stdout


def chorus_rows(chorus, extra):
    """busbw per (collective, bytes) and time per call, out of place, from chorus bench --json."""
    out = run([chorus, "bench", "--ranks", "2", "--json"] + extra)
    rows = {}
    for line in (out or "").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("placement") == "out-of-place":
            rows[(row["collective"], row["bytes"])] = (row["busbw_gbps"], row["time_us"])
    return rows


def mpi_rows(launcher, binary, extra):
    """busbw per (collective, bytes) and time per call, from mpi_coll_perf's table."""
    out = run(launcher + [binary] + extra)
    rows, collective = {}, None
    for line in (out or "").splitlines():
        if line.startswith("# op="):
            collective = MPI_NAMES.get(line.split()[1][3:])
        elif line.strip() and not line.startswith("#") and collective:
            fields = line.split()
            # size count type time_us algbw busbw iters #wrong median_us
            rows[(collective, int(fields[0]))] = (float(fields[5]), float(fields[3]))
    return rows


def build_anchors(anchors, into):
    """Compiles mpi_coll_perf for each MPI found; returns {name: (launcher, binary)}."""
    source = os.path.join(anchors, "mpi_coll_perf.c")
    if not os.path.isfile(source):
        fail(f"{source} is missing: pass --anchors, the directory of the anchor benchmarks")
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    found = {}
    for name, compiler, launcher in (
        ("Open MPI", "mpicc.openmpi", ["mpirun.openmpi"] + root + ["-np", "2", "--bind-to", "core", "--mca", "pml", "ob1", "--mca", "btl", "vader,self"]),
        ("MPICH", "mpicc.mpich", ["mpirun.mpich", "-np", "2"]),
    ):
        if not shutil.which(compiler) or not shutil.which(launcher[0]):
            print(f"side-by-side: {compiler} or {launcher[0]} not found; {name} is left out", file=sys.stderr)
            continue
        binary = os.path.join(into, "mpi_coll_perf." + compiler.split(".")[1])
        if run([compiler, "-O2", "-o", binary, source]) is not None:
            found[name] = (launcher, binary)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds to run (default 3)")
    parser.add_argument("--chorus", help="the chorus binary (default: build it in release)")
    parser.add_argument("--anchors", default=os.path.join(REPO, "..", "shared", "anchors"),
                        help="directory of the anchor benchmarks (default ../shared/anchors)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100:
        fail(f"--rounds {args.rounds}: expected 1 to 100")
    if not shutil.which("cc"):
        fail("cc not found (apt-get install gcc)")

    chorus = args.chorus
    if chorus is None:
        if run(["swift", "build", "-c", "release", "--product", "chorus", "--package-path", REPO], timeout=3600) is None:
            fail("could not build chorus")
        chorus = os.path.join(REPO, ".build", "release", "chorus")
    if not os.access(chorus, os.X_OK):
        fail(f"{chorus} is not an executable")

    with tempfile.TemporaryDirectory(prefix="chorus-side-by-side-") as scratch:
        pingpong = os.path.join(scratch, "cacheline_pingpong")
        if run(["cc", "-O2", "-o", pingpong, os.path.join(REPO, "Tools", "Benchmarks", "CoreLatency", "cacheline_pingpong.c")]) is None:
            fail("could not build the ping-pong")
        mpis = build_anchors(args.anchors, scratch)
        rounds = []
        for r in range(1, args.rounds + 1):
            load = os.getloadavg()[0]
            words = (run([pingpong]) or "").split()
            trip = words[-2] if len(words) >= 2 else "?"
            print(f"# round {r}: load {load:.2f}, cache-line round trip {trip} ns", file=sys.stderr)
            large = ["-b", "64M", "-e", "256M", "-f", "4", "-n", "20", "-w", "5", "-c", "0", "--collective", ",".join(COLLECTIVES)]
            # The 8-byte runs warm up for about 0.15 s (Open MPI and MPICH: at most a quarter of
            # their 1 s budget): on this VM a job's first few hundred milliseconds hold stalls of
            # up to about 100 ms (steal time, at any futex timeout), which a 50,000-call
            # measurement of either library taken then absorbs as whole microseconds per call.
            small = ["-b", "8", "-e", "8", "-n", "50000", "-w", str(SMALL_WARMUP), "-c", "0"]
            result = {"load": load, "trip": trip,
                      "Chorus": {**chorus_rows(chorus, large), **chorus_rows(chorus, small)},
                      "Chorus -R 1": chorus_rows(chorus, ["-R", "1"] + large)}
            for name, (launcher, binary) in mpis.items():
                result[name] = {**mpi_rows(launcher, binary, ["-b", "64M", "-e", "256M", "-f", "4", "-T", "0.3", "-o", "all"]),
                                **mpi_rows(launcher, binary, ["-b", "8", "-e", "8", "-o", "allreduce", "-n", "50000", "-w", str(SMALL_WARMUP), "-T", "1"])}
            rounds.append(result)
        report(rounds, list(mpis))


def report(rounds, mpis):
    columns = ["Chorus", "Chorus -R 1"] + mpis
    print("round  load  ping-pong(ns)")
    for r, result in enumerate(rounds, 1):
        print(f"{r:5}  {result['load']:4.2f}  {result['trip']}")
    print()
    print("busbw GB/s, out of place; ratio = Chorus / reference (all-reduce: Open MPI; else the better MPI)")
    print(f"{'collective':15} {'size':>5} " + " ".join(f"{c:>12}" for c in columns) + "   ratio  (-R 1)")
    summary = []
    for collective in COLLECTIVES:
        for size in SIZES:
            ratios, shared_ratios = [], []
            for r, result in enumerate(rounds, 1):
                values = [result.get(c, {}).get((collective, size), (None, None))[0] for c in columns]
                others = [result.get(m, {}).get((collective, size), (None, None))[0] for m in mpis
                          if collective != "all-reduce" or m == "Open MPI"]
                others = [v for v in others if v]
                reference = max(others) if others else None
                ratio = values[0] / reference if values[0] and reference else None
                shared = values[1] / reference if values[1] and reference else None
                if ratio: ratios.append(ratio)
                if shared: shared_ratios.append(shared)
                cells = " ".join(f"{v:12.2f}" if v else f"{'-':>12}" for v in values)
                print(f"{collective:15} {size >> 20:4}M {cells}   {ratio or 0:5.2f}x {shared or 0:5.2f}x   (round {r})")
            met = sum(x >= TARGETS[collective] for x in ratios)
            summary.append(f"{collective} {size >> 20} MiB: {TARGETS[collective]}x met in {met} of {len(ratios)} rounds"
                           + (f" (ratios {min(ratios):.2f}x-{max(ratios):.2f}x; with -R 1 {min(shared_ratios):.2f}x-{max(shared_ratios):.2f}x)" if ratios and shared_ratios else ""))
    print()
    print("8-byte all-reduce, us per call (50,000 calls)")
    times = []
    for r, result in enumerate(rounds, 1):
        cells = []
        for c in ["Chorus"] + mpis:
            t = result.get(c, {}).get(("all-reduce", 8), (None, None))[1]
            cells.append(f"{c} {t:.2f}" if t else f"{c} -")
            if c == "Chorus" and t: times.append(t)
        print(f"  round {r}: " + ", ".join(cells))
    summary.append(f"8-byte all-reduce: within {SMALL_TARGET_US} us in {sum(t <= SMALL_TARGET_US for t in times)} of {len(times)} rounds")
    print()
    print("targets (2 ranks, out of place, ordinary buffers):")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
