import Foundation
import Testing

/// Jobs of real processes on shared memory, launched by `chorus run`: every collective, data
/// type and op checked on each rank count (one launch per rank count runs its whole grid), a
/// killed rank named by the others, and no segment left behind.
@Suite(.serialized) struct SharedMemoryJobTests {
    @Test(arguments: [1, 2, 3, 4, 5, 8])
    func everyCollectiveIsCorrectAcrossProcesses(ranks: Int) throws {
        let r = try runChorus(["run", "-n", String(ranks), "--", chorusExecutable, "hello", "--check"], environment: ["CHORUS_TIMEOUT": "60"])
        #expect(r.status == 0, "\(r.stderr)")
        let summaries = r.stdout.split(separator: "\n").filter { $0.contains("calls checked") }
        #expect(summaries.count == ranks)
        #expect(summaries.allSatisfy { $0.hasSuffix(" 0 wrong") }, "\(summaries)")
        if ranks > 1 { #expect(r.stdout.contains("transport shm")) }
        #expect(try leftoverSegments().isEmpty)
    }

    @Test func waitsSpinOnlyWhenEveryRankHasACPUOfItsOwn() throws {
        // Pinned together to CPU 0 (children inherit the mask), two ranks must not spin: the
        // one waited for could not run. Each pinned to a CPU of its own, they may.
        let taskset = "/usr/bin/taskset"
        guard FileManager.default.isExecutableFile(atPath: taskset) else { return }
        let together = try runProcess(taskset, ["-c", "0", chorusExecutable, "run", "-n", "2", "--", chorusExecutable, "hello", "--check"],
                                      environment: ["CHORUS_DEBUG": "INFO"])
        #expect(together.status == 0, "\(together.stderr)")
        #expect(together.stderr.contains("2 ranks on 1 CPU(s) they may run on: waits yield the core"), "\(together.stderr)")
        #expect(together.stdout.components(separatedBy: " 0 wrong").count == 3, "\(together.stdout)")
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { return }
        let apart = try runChorus(["run", "-n", "2", "--", "/bin/sh", "-c", "exec \(taskset) -c $LOCAL_RANK \(chorusExecutable) hello"],
                                  environment: ["CHORUS_DEBUG": "INFO"])
        #expect(apart.status == 0, "\(apart.stderr)")
        #expect(apart.stderr.contains("2 ranks on 2 CPU(s) they may run on: waits spin"), "\(apart.stderr)")
    }

    /// A /dev/shm of 4 MiB (a private mount, as in a small container) cannot hold four ranks'
    /// segments: `auto` says so and goes over TCP, `shm` fails naming the rank and the shortfall,
    /// a job on several hosts goes over the network within a host short of it, and nothing dies
    /// of SIGBUS. Needs root and unshare (util-linux) for the mount.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                   "needs root and /usr/bin/unshare to mount a small /dev/shm"))
    func aSharedMemoryTooSmallForTheJobIsNamed() throws {
        func inSmallSharedMemory(_ transport: String) throws -> ToolResult {
            try runProcess("/usr/bin/unshare", ["-m", "/bin/sh", "-c", "mount -t tmpfs -o size=4m tmpfs /dev/shm && exec \"$@\"", "sh",
                                                chorusExecutable, "bench", "--ranks", "4", "--transport", transport,
                                                "-b", "8", "-e", "8", "-n", "2", "-w", "1", "--check"])
        }
        let auto = try inSmallSharedMemory("auto")
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(auto.stdout.contains("transport tcp"), "\(auto.stdout)")
        #expect(auto.stdout.contains("# Out of bounds values : 0 OK"))
        #expect(auto.stderr.contains("could not set up the job's shared memory") && auto.stderr.contains("of /dev/shm"), "\(auto.stderr)")
        let shm = try inSmallSharedMemory("shm")
        #expect(shm.status != 0)
        #expect(shm.stderr.contains("could not set up the job's shared memory: cannot reserve"), "\(shm.stderr)")
        #expect(shm.stderr.contains("No space left on device"), "\(shm.stderr)")
        #expect(!shm.stderr.contains("signal 7"), "\(shm.stderr)")
        // Two hosts of two ranks (CHORUS_HOSTID) in 3 MiB: at most two of the four segments fit,
        // and a host with a rank without one uses TCP between its own ranks too.
        let mixed = try runProcess("/usr/bin/unshare", ["-m", "/bin/sh", "-c", "mount -t tmpfs -o size=3m tmpfs /dev/shm && exec \"$@\"", "sh",
                                                        chorusExecutable, "run", "-n", "4", "--", "/bin/sh", "-c",
                                                        "CHORUS_HOSTID=h$((LOCAL_RANK / 2)) exec \"$0\" hello --check", chorusExecutable])
        #expect(mixed.status == 0, "\(mixed.stderr)")
        #expect(mixed.stderr.contains("ranks of its host use TCP between them too"), "\(mixed.stderr)")
        #expect(mixed.stdout.components(separatedBy: " 0 wrong").count == 5, "\(mixed.stdout)")
    }

    @Test func aKilledRankIsNamedByTheOthers() throws {
        let (pid, survivors) = try killRankOneMidCollective(environment: [:])
        for (status, text) in survivors {
            #expect(status == 1)
            #expect(text.contains("rank 1 (pid \(pid)) is gone"), "\(text)")
        }
        #expect(try leftoverSegments().isEmpty)
    }

    @Test func segmentsOfDeadJobsAreRemovedByTheNextJob() throws {
        // A segment name as a crashed job would leave it: its creator's pid no longer exists.
        let dead = Int32(4_000_000)
        #expect(kill(dead, 0) != 0)
        let name = "/chorus-\(getuid())-\(dead)-feed-0"
        // And a shared buffer that process never freed.
        let buffer = "/chorus-\(getuid())-\(dead)-buffer-7"
        for n in [name, buffer] {
            let fd = shm_open(n, O_CREAT | O_RDWR, 0o600)
            #expect(fd >= 0)
            close(fd)
            #expect(try leftoverSegments().contains(String(n.dropFirst())))
        }
        let r = try runChorus(["run", "-n", "2", "--", chorusExecutable, "hello"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try leftoverSegments().isEmpty)
    }

    /// This user's Chorus segments in /dev/shm whose creating process is gone (segments of jobs
    /// running right now, in other tests, are not leftovers).
    func leftoverSegments() throws -> [String] {
        let prefix = "chorus-\(getuid())-"
        return try FileManager.default.contentsOfDirectory(atPath: "/dev/shm").filter { name in
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }) else { return false }
            return kill(pid, 0) != 0 && errno == ESRCH
        }
    }
}

/// `chorus bench` over shared memory: every collective checked, the output formats, the flags.
@Suite(.serialized) struct BenchCommandTests {
    @Test func everyCollectiveIsCheckedAcrossASweep() throws {
        let r = try runChorus(["bench", "--ranks", "3", "--collective", "all", "--check", "-b", "4", "-e", "1M", "-f", "16", "-n", "2", "-w", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
        #expect(r.stdout.contains("# Avg bus bandwidth"))
        for c in ["all-reduce", "all-gather", "reduce-scatter", "broadcast", "reduce"] { #expect(r.stdout.contains("# collective: \(c)")) }
        let rows = r.stdout.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        #expect(rows.count == 5 * 5)   // sizes 4, 64, 1K, 16K, 256K for each collective
    }

    @Test func largeMessagesThroughTheRingsAreChecked() throws {
        // Several fragments per message, streaming copies out of the rings and in the executor.
        let r = try runChorus(["bench", "--ranks", "3", "--collective", "all", "-b", "3M", "-e", "3M", "-n", "1", "-w", "0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
    }

    @Test func largeMessagesWrittenBothWaysAreChecked() throws {
        // Messages of 1 MiB and more: the first to each peer is written with ordinary stores,
        // the next once both ends have timed those with streaming stores (`RingWriteMode`);
        // copies and reductions, both placements (at 8 MiB the ring algorithms' messages are 1 MiB).
        let r = try runChorus(["bench", "--ranks", "2", "--collective", "all-gather,all-reduce", "--check", "-b", "8M", "-e", "8M",
                               "-n", "3", "-w", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
    }

    @Test(arguments: ["ordinary", "streaming"])
    func largeMessagesWrittenOneWayAreChecked(_ writes: String) throws {
        let r = try runChorus(["bench", "--ranks", "2", "--collective", "all-reduce", "--check", "-b", "8M", "-e", "8M",
                               "-n", "1", "-w", "0"], environment: ["CHORUS_SHM_RING_WRITES": writes])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
        // An odd count of bytes: the second half, and so its fragments' payloads, which line up
        // with their destinations (`Ring.largeFragment`), lie off the cache lines; all-gather's
        // sends carry its local copy, written in the same pass as the ring.
        let odd = try runChorus(["bench", "--ranks", "2", "--collective", "all-gather", "--check", "-b", "2400002", "-e", "2400002",
                                 "-d", "uint8", "-n", "1", "-w", "0"], environment: ["CHORUS_SHM_RING_WRITES": writes])
        #expect(odd.status == 0, "\(odd.stderr)")
        #expect(odd.stdout.contains("# Out of bounds values : 0 OK"))
    }

    @Test func directReadsAreCheckedToo() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--collective", "all", "-b", "1M", "-e", "1M", "-n", "2", "-w", "1", "-d", "bfloat16"],
                              environment: ["CHORUS_SHM_DIRECT": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
    }

    @Test func sharedBuffersAreReadInPlaceAndChecked() throws {
        // -R 1: buffers from SharedBuffer; blocks of 128 KiB and more are read in place by the
        // receivers (inputs and outputs both shared, every collective, reductions included).
        let r = try runChorus(["bench", "--ranks", "3", "-R", "1", "--collective", "all", "--check", "-b", "384K", "-e", "1536K", "-f", "4",
                               "-n", "1", "-w", "1", "-d", "int32", "-o", "max"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("shared buffers (-R 1)"))
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
        let rows = r.stdout.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        #expect(rows.count == 2 * 5)   // sizes 384K and 1536K for each collective
        #expect(try SharedMemoryJobTests().leftoverSegments().isEmpty)
    }

    @Test func jsonLinesHaveTheDocumentedKeys() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--json", "-b", "8", "-e", "64", "-f", "8", "-n", "2", "-w", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 4)   // two sizes × two placements, from rank 0 only
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            #expect(Set(object.keys) == ["collective", "algorithm", "transport", "ranks", "bytes", "count", "dtype", "op",
                                         "placement", "time_us", "algbw_gbps", "busbw_gbps", "wrong"])
            #expect(object["transport"] as? String == "shm")
            #expect(object["wrong"] as? Int == 0)
        }
    }

    @Test func csvAndPlotAreWritten() throws {
        let plot = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-bench-\(getpid()).svg").path
        defer { try? FileManager.default.removeItem(atPath: plot) }
        let r = try runChorus(["bench", "--ranks", "2", "--csv", "-b", "1K", "-e", "4K", "-f", "4", "-n", "2", "-w", "1", "--plot", plot])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("collective,algorithm,transport,ranks,bytes,count,dtype,op,placement,time_us,algbw_gbps,busbw_gbps,wrong\n"))
        #expect(r.stdout.split(separator: "\n").count == 1 + 4)
        #expect(try String(contentsOfFile: plot, encoding: .utf8).contains("<polyline"))
    }

    @Test(arguments: [["-b", "1M", "-e", "1K"], ["-f", "1"], ["-n", "0"], ["-c", "2"], ["--collective", "alltoall"], ["-d", "float8"],
                      ["-o", "xor"], ["--transport", "pigeon"], ["--json", "--csv"], ["--ranks", "0"], ["-R", "2"],
                      ["-b", "8", "-e", "4611686018427387900"], ["--plot", "/nonexistent-chorus-dir/p.svg"], ["--plot", "/"]])
    func badFlagsAreUsageErrors(_ flags: [String]) throws {
        let r = try runChorus(["bench"] + flags)
        #expect(r.status == 64, "\(flags): \(r.stderr)")
    }

    @Test(arguments: [["bench", "-n", "-5"], ["bench", "-w", "-1"], ["bench", "-f", "-2"], ["bench", "--ranks", "-1"], ["bench", "-R", "-1"],
                      ["bench", "-b", "-8"], ["run", "-n", "-2", "--", "true"], ["plan", "--ranks", "-3"], ["sim", "--ranks", "-4"]])
    func aNegativeNumberIsNamedNotTakenForAFlag(_ arguments: [String]) throws {
        // A value starting with '-' is the option's value: the error names it, instead of
        // saying the value is missing.
        let r = try runChorus(arguments)
        #expect(r.status == 64, "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains(arguments[2]) && !r.stderr.contains("Missing value"), "\(arguments): \(r.stderr)")
    }

    @Test func buffersLargerThanTheHostsMemoryAreRefusedBeforeAnyIsTouched() throws {
        // 2 × 4 TiB per rank: refused with the need and what is available, not killed by the kernel.
        for shared in ["0", "1"] {
            let r = try runChorus(["bench", "-R", shared, "-b", "4096G", "-e", "4096G", "-n", "1", "-w", "0"])
            #expect(r.status == 1, "\(r.stderr)")
            #expect(r.stderr.contains("MemAvailable") && r.stderr.contains("8192.0 GiB"), "\(r.stderr)")
        }
    }

    @Test func aNamedTransportThatIsUnavailableFailsEveryRank() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--transport", "verbs", "-b", "8", "-e", "8"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("CHORUS_TRANSPORT=verbs"), "\(r.stderr)")
        if !verbsDevicePresent && chorusHasOFI {
            // Says why: on this host, no device.
            #expect(r.stderr.contains("no RDMA device"), "\(r.stderr)")
        }
    }
}
