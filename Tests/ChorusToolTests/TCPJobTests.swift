import Foundation
import Testing

/// Jobs of real processes over TCP (loopback): every collective checked, host identity choosing
/// TCP, a killed rank named, a bad interface named.
@Suite(.serialized) struct TCPJobTests {
    @Test(arguments: [2, 3, 4])
    func everyCollectiveIsCorrectOverTCP(ranks: Int) throws {
        let r = try runChorus(["run", "-n", String(ranks), "--", chorusExecutable, "hello", "--check"],
                              environment: ["CHORUS_TRANSPORT": "tcp", "CHORUS_TIMEOUT": "60"])
        #expect(r.status == 0, "\(r.stderr)")
        let summaries = r.stdout.split(separator: "\n").filter { $0.contains("calls checked") }
        #expect(summaries.count == ranks)
        #expect(summaries.allSatisfy { $0.hasSuffix(" 0 wrong") }, "\(summaries)")
        #expect(r.stdout.components(separatedBy: "transport tcp").count == ranks + 1)
    }

    @Test func ranksOnDifferentHostsUseTCP() throws {
        // Two "hosts" (CHORUS_HOSTID differs per rank): auto must not pick shared memory.
        let r = try runChorus(["run", "-n", "2", "--", "sh", "-c", "CHORUS_HOSTID=host$RANK exec \"$0\" hello --check", chorusExecutable])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "transport tcp").count == 3, "\(r.stdout)")
    }

    @Test func largeMessagesAreChecked() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--transport", "tcp", "--collective", "all", "-b", "3M", "-e", "3M", "-n", "1", "-w", "0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
        #expect(r.stdout.contains("transport tcp"))
    }

    @Test func anInterfaceThatDoesNotExistIsNamed() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--transport", "tcp", "-b", "8", "-e", "8"],
                              environment: ["CHORUS_SOCKET_IFNAME": "nonexistent0"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("CHORUS_SOCKET_IFNAME=nonexistent0: no interface of that name"), "\(r.stderr)")
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
            env["CHORUS_JOB_TOKEN"] = "tcp-kill-test"
            env["CHORUS_TRANSPORT"] = "tcp"
            env["CHORUS_TIMEOUT"] = "120"
            p.environment = env
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            return (p, err)
        }
        let ranks = try (0..<3).map(start)
        Thread.sleep(forTimeInterval: 1.5)
        kill(ranks[1].0.processIdentifier, SIGKILL)
        for r in [0, 2] {
            let text = String(decoding: ranks[r].1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            ranks[r].0.waitUntilExit()
            #expect(ranks[r].0.terminationStatus == 1)
            #expect(text.contains("rank 1"), "rank \(r): \(text)")
        }
        ranks[1].0.waitUntilExit()
    }
}
