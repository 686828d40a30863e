import Foundation
import Testing

@Suite("chorus plan and chorus verify", .serialized)
struct PlanVerifyCommandTests {
    func json(_ result: ToolResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    @Test func planWritesTheChosenAlgorithmAndEveryCandidate() throws {
        let result = try runChorus(["plan", "--topology", "nvidia-dgx-h100", "--collective", "all-reduce", "--size", "256M", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try json(result)
        #expect((object["algorithm"] as? String).map { !$0.isEmpty } == true)
        #expect(object["ranks"] as? Int == 8)
        #expect(object["bytes"] as? Int == 256 << 20)
        let candidates = try #require(object["candidates"] as? [[String: Any]])
        #expect(candidates.contains { $0["status"] as? String == "chosen" })
        let text = try runChorus(["plan", "--topology", "Topologies/aws-trn2.48xlarge.yaml", "--size", "1G", "--explain"])
        #expect(text.stdout.contains("algorithm   torus-rings") || text.stdout.contains("algorithm   bidirectional-ring"))
        #expect(text.stdout.contains("torus-rings: "))
        #expect(text.stdout.contains("hierarchical: cannot run: the topology is not composed of instances"))
    }

    @Test func gatherSizesRoundDownToWholeElementsPerRankAndZeroIsValid() throws {
        let r = try json(try runChorus(["plan", "--topology", "localhost", "--ranks", "3", "--collective", "all-gather", "--size", "1000", "--json"]))
        #expect(r["bytes"] as? Int == 996)   // 3 ranks x 4-byte floats = 12-byte units
        #expect(r["ranks"] as? Int == 3)
        let zero = try runChorus(["plan", "--collective", "reduce-scatter", "--size", "0", "--json"])
        #expect(zero.status == 0)
        #expect(try json(zero)["bytes"] as? Int == 0)
    }

    @Test func overridesComeFromTheFlagOrTheEnvironment() throws {
        let flag = try json(try runChorus(["plan", "--algo", "ring", "--json"]))
        #expect(flag["algorithm"] as? String == "ring" && flag["overridden"] as? Bool == true)
        let env = try json(try runChorus(["plan", "--json"], environment: ["CHORUS_ALGO": "all-reduce:halving-doubling"]))
        #expect(env["algorithm"] as? String == "halving-doubling")
        let bad = try runChorus(["plan", "--algo", "rng"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("unknown algorithm 'rng' (did you mean 'ring'?)"))
        let impossible = try runChorus(["plan", "--algo", "hierarchical"])
        #expect(impossible.status == 1)
        #expect(impossible.stderr.contains("none can run here"))
    }

    @Test func badFlagsExitSixtyFourAndBadFilesExitOne() throws {
        #expect(try runChorus(["plan", "--size", "lots"]).status == 64)
        #expect(try runChorus(["plan", "--collective", "all-to-all"]).status == 64)
        #expect(try runChorus(["plan", "--ranks", "0"]).status == 64)
        #expect(try runChorus(["plan", "--topology", "aws-trn2.48xlarge", "--ranks", "17"]).status == 64)
        #expect(try runChorus(["plan", "--topology", "no-such-topology"]).status == 1)
        #expect(try runChorus(["plan", "--collective", "broadcast", "--root", "99"]).status == 64)
    }

    @Test func anEmittedScheduleVerifiesAndABrokenOneDoesNot() throws {
        let dir = NSTemporaryDirectory() + "chorus-plan-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/ring.json"
        let plan = try runChorus(["plan", "--topology", "localhost", "--ranks", "5", "--algo", "ring", "--emit-schedule", path])
        #expect(plan.status == 0, "\(plan.stderr)")
        let ok = try runChorus(["verify", path])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("proven: all-reduce on 5 ranks"))
        // Break it: rank 0's first op sends a chunk that is not there yet.
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "[{\"op\": \"send\", \"peer\": 1, \"buffer\": \"input\"", with: "[{\"op\": \"send\", \"peer\": 1, \"buffer\": \"output\"")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let broken = try runChorus(["verify", path])
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("reads output chunk 4, which holds nothing yet"))
    }

    @Test func verifyProvesRegisteredAlgorithms() throws {
        let r = try runChorus(["verify", "--algo", "torus-rings", "--collective", "reduce-scatter", "--ranks", "16", "--topology", "aws-trn2.48xlarge"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try runChorus(["verify", "--algo", "torus-rings", "--ranks", "16"]).status == 1)
        #expect(try runChorus(["verify"]).status == 64)
        #expect(try runChorus(["verify", "--algo", "nope"]).status == 64)
        #expect(try runChorus(["verify", "/no/such.json"]).status == 1)
    }

    @Test func aProofTooLargeForThisMachineIsRefusedBeforeItStarts() throws {
        let r = try runChorus(["verify", "--algo", "ring", "--ranks", "65536"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("proving ring all-reduce on 65536 ranks (about 17,179,607,040 ops) needs about"), "\(r.stderr)")
        #expect(r.stderr.contains("Verify fewer ranks."))
    }

    @Test func helpShowsSizeDefaultsAsTheyAreTyped() throws {
        let bench = try runChorus(["bench", "--help"])
        #expect(bench.stdout.contains("(default: 32M)"), "\(bench.stdout)")
        for command in ["bench", "sim", "plan"] {
            let help = try runChorus([command, "--help"])
            #expect(help.status == 0)
            #expect(!help.stdout.contains("SizeArgument"), "\(command): \(help.stdout)")
        }
    }
}
