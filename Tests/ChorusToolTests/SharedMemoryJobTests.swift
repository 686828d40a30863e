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

    @Test func aKilledRankIsNamedByTheOthers() throws {
        let port = 20000 + Int.random(in: 0..<20000)
        func start(_ rank: Int) throws -> (Process, Pipe) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chorusExecutable)
            p.arguments = ["hello", "--check", "--iterations", "100000"]
            var env = ProcessInfo.processInfo.environment
            env["RANK"] = String(rank)
            env["WORLD_SIZE"] = "3"
            env["CHORUS_RENDEZVOUS"] = "127.0.0.1:\(port)"
            env["CHORUS_JOB_TOKEN"] = "kill-test"
            env["CHORUS_TIMEOUT"] = "120"
            p.environment = env
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            return (p, err)
        }
        let ranks = try (0..<3).map(start)
        // Let the job form and run for a while, then kill rank 1 mid-collective.
        Thread.sleep(forTimeInterval: 1.5)
        kill(ranks[1].0.processIdentifier, SIGKILL)
        for r in [0, 2] {
            let text = String(decoding: ranks[r].1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            ranks[r].0.waitUntilExit()
            #expect(ranks[r].0.terminationStatus == 1)
            #expect(text.contains("rank 1 (pid \(ranks[1].0.processIdentifier)) is gone"), "rank \(r): \(text)")
        }
        ranks[1].0.waitUntilExit()
        #expect(try leftoverSegments().isEmpty)
    }

    @Test func segmentsOfDeadJobsAreRemovedByTheNextJob() throws {
        // A segment name as a crashed job would leave it: its creator's pid no longer exists.
        let dead = Int32(4_000_000)
        #expect(kill(dead, 0) != 0)
        let name = "/chorus-\(getuid())-\(dead)-feed-0"
        let fd = shm_open(name, O_CREAT | O_RDWR, 0o600)
        #expect(fd >= 0)
        close(fd)
        #expect(try leftoverSegments().contains(String(name.dropFirst())))
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
