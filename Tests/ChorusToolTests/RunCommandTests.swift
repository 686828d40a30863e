import Foundation
import Testing

/// `chorus run` launches real processes with the launcher environment; `chorus hello` joins the
/// job through the rendezvous store across them.
@Suite(.serialized) struct RunCommandTests {
    @Test func everyRankGetsTheLauncherEnvironment() throws {
        let r = try runChorus(["run", "-n", "3", "--", "sh", "-c", "echo rank=$RANK size=$WORLD_SIZE local=$LOCAL_RANK store=$CHORUS_RENDEZVOUS token=$CHORUS_JOB_TOKEN"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init).sorted()
        #expect(lines.count == 3)
        for (i, line) in lines.enumerated() { #expect(line.hasPrefix("rank=\(i) size=3 local=\(i) store=127.0.0.1:")) }
        // One store and one token for the whole job.
        #expect(Set(lines.map { $0.split(separator: " ").dropFirst(3).joined() }).count == 1)
        #expect(!lines[0].hasSuffix("token="))
    }

    @Test func aFailingRankStopsTheOthersAndSetsTheStatus() throws {
        let r = try runChorus(["run", "-n", "3", "--grace", "1", "--", "sh", "-c", "if [ $RANK = 1 ]; then exit 3; fi; sleep 60"])
        #expect(r.status == 3)
        #expect(r.stderr.contains("rank 1"), "\(r.stderr)")
        #expect(r.stderr.contains("exited with status 3"))
    }

    @Test func aCommandThatCannotStartIsNamed() throws {
        let r = try runChorus(["run", "-n", "2", "--", "/nonexistent/trainer"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("/nonexistent/trainer"), "\(r.stderr)")
    }

    @Test(arguments: [["run", "-n", "0", "--", "true"], ["run", "-n", "2"], ["run", "--", "true"]])
    func badFlagsAreUsageErrors(_ arguments: [String]) throws {
        #expect(try runChorus(arguments).status == 64)
    }

    @Test func oneRankJoinsAndAnswers() throws {
        let r = try runChorus(["run", "-n", "1", "--", chorusExecutable, "hello"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("rank 0 of 1: transport inproc"))
    }

    @Test func ranksInSeparateProcessesMeetOverSharedMemory() throws {
        let r = try runChorus(["run", "-n", "2", "--", chorusExecutable, "hello"], environment: ["CHORUS_TIMEOUT": "20"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "transport shm").count == 3, "\(r.stdout)")
    }

    @Test func anUnavailableNamedTransportIsAnErrorOnEveryRank() throws {
        let r = try runChorus(["run", "-n", "2", "--", chorusExecutable, "hello"], environment: ["CHORUS_TRANSPORT": "verbs"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("CHORUS_TRANSPORT=verbs"), "\(r.stderr)")
    }

    @Test func aProcessWithTheWrongTokenIsRefused() throws {
        let port = freeLoopbackPort()
        func start(_ rank: Int, token: String) throws -> (Process, Pipe) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chorusExecutable)
            p.arguments = ["hello"]
            var env = ProcessInfo.processInfo.environment
            env["RANK"] = String(rank)
            env["WORLD_SIZE"] = "2"
            env["CHORUS_RENDEZVOUS"] = "127.0.0.1:\(port)"
            env["CHORUS_JOB_TOKEN"] = token
            env["CHORUS_TIMEOUT"] = "2"
            p.environment = env
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            return (p, err)
        }
        let (owner, ownerErr) = try start(0, token: "right")
        Thread.sleep(forTimeInterval: 0.3)
        let (intruder, intruderErr) = try start(1, token: "wrong")
        let intruderText = String(decoding: intruderErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let ownerText = String(decoding: ownerErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        intruder.waitUntilExit()
        owner.waitUntilExit()
        #expect(intruder.terminationStatus == 1)
        #expect(intruderText.contains("refused rank 1"), "\(intruderText)")
        #expect(ownerText.contains("rank 1 of 2 never arrived"), "\(ownerText)")
    }
}
