import Foundation
import Testing

@Suite("chorus sim", .serialized)
struct SimCommandTests {
    private func lines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    private func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("chorus-sim-\(getpid())-\(name)").path
    }

    @Test func aSweepReadsLikeABenchRun() throws {
        let r = try runChorus(["sim", "--topology", "aws-trn2.48xlarge", "-b", "1K", "-e", "1M", "-f", "32", "--compare-model"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# collective: all-reduce"))
        #expect(r.stdout.contains("#       size         count      type   redop    root     time   algbw   busbw #wrong"))
        #expect(r.stdout.contains("model(us)     gap"))
        let rows = r.stdout.split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(rows.count == 3)   // 1K, 32K, 1M
        #expect(rows.allSatisfy { $0.contains("%") })
        #expect(r.stdout.contains("# Avg bus bandwidth"))
    }

    @Test func jsonRowsCarryTheBenchKeysWithTransportSim() throws {
        let r = try runChorus(["sim", "--topology", "localhost", "--ranks", "4", "--collective", "all-gather,reduce-scatter",
                               "-b", "64K", "-e", "256K", "--json", "--compare-model"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = lines(r.stdout)
        #expect(rows.count == 2 * 2 * 2)  // collectives x sizes x placements
        for row in rows {
            for key in ["collective", "algorithm", "transport", "ranks", "bytes", "count", "dtype", "op", "placement", "time_us", "algbw_gbps", "busbw_gbps", "wrong"] {
                #expect(row[key] != nil, "missing \(key)")
            }
            #expect(row["transport"] as? String == "sim")
            #expect(row["ranks"] as? Int == 4)
            #expect((row["time_us"] as? NSNumber).map { $0.doubleValue > 0 } == true)
            #expect(row["model_time_us"] != nil && row["model_gap_pct"] != nil)
        }
        #expect(Set(rows.compactMap { $0["placement"] as? String }) == ["out-of-place", "in-place"])
    }

    @Test func twoRunsPrintTheSameBytes() throws {
        let args = ["sim", "--topology", "aws-trn2.48xlarge", "--collective", "all", "-b", "4K", "-e", "4M", "-f", "32", "--links", "4"]
        let a = try runChorus(args), b = try runChorus(args)
        #expect(a.status == 0)
        #expect(a.stdout == b.stdout)
        #expect(a.stdout.contains("# busiest links"))
    }

    @Test func theTraceIsChromeJSONWithOneProcessPerRank() throws {
        let path = temporaryPath("trace.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try runChorus(["sim", "--topology", "localhost", "--ranks", "3", "--algo", "ring", "-b", "1M", "-e", "1M", "--trace", path])
        #expect(r.status == 0, "\(r.stderr)")
        let data = try #require(FileManager.default.contents(atPath: path))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let events = try #require(object["traceEvents"] as? [[String: Any]])
        let slices = events.filter { $0["ph"] as? String == "X" }
        #expect(Set(slices.compactMap { $0["pid"] as? Int }) == [0, 1, 2])
        #expect(slices.contains { ($0["name"] as? String)?.hasPrefix("send to") == true })
        #expect(slices.allSatisfy { (($0["dur"] as? NSNumber)?.doubleValue ?? -1) >= 0 })
        // --trace-ranks keeps the first ranks only.
        let some = try runChorus(["sim", "--topology", "localhost", "--ranks", "3", "--algo", "ring", "-b", "1M", "-e", "1M", "--trace", path, "--trace-ranks", "2"])
        #expect(some.status == 0 && some.stderr.contains("ranks 0-1 of 3"), "\(some.stderr)")
        let fewerData = try #require(FileManager.default.contents(atPath: path))
        let fewer = try #require(try JSONSerialization.jsonObject(with: fewerData) as? [String: Any])
        let fewerSlices = try #require(fewer["traceEvents"] as? [[String: Any]]).filter { $0["ph"] as? String == "X" }
        #expect(Set(fewerSlices.compactMap { $0["pid"] as? Int }) == [0, 1])
        // No two slices on one (rank, lane) overlap, so every track nests.
        for (_, group) in Dictionary(grouping: slices, by: { "\($0["pid"]!)/\($0["tid"]!)" }) {
            let spans = group.map { (($0["ts"] as! NSNumber).doubleValue, ($0["ts"] as! NSNumber).doubleValue + ($0["dur"] as! NSNumber).doubleValue) }.sorted { $0.0 < $1.0 }
            for (x, y) in zip(spans, spans.dropFirst()) { #expect(x.1 <= y.0 + 1e-9) }
        }
    }

    @Test func aUserScheduleRunsAndItsCollectiveDecides() throws {
        let path = temporaryPath("schedule.json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let emitted = try runChorus(["plan", "--topology", "localhost", "--ranks", "4", "--collective", "reduce-scatter", "--algo", "ring", "--emit-schedule", path])
        #expect(emitted.status == 0, "\(emitted.stderr)")
        let r = try runChorus(["sim", "--topology", "localhost", "--schedule", path, "--channels", "2", "--slice", "64K", "-b", "1M", "-e", "1M", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(lines(r.stdout).first?["collective"] as? String == "reduce-scatter")
        let wrong = try runChorus(["sim", "--topology", "localhost", "--schedule", path, "--collective", "all-reduce"])
        #expect(wrong.status == 64)
        #expect(wrong.stderr.contains("is a reduce-scatter schedule"))
    }

    @Test func calibrationFitsBenchRowsAndFeedsTheSimulator() throws {
        // Rows shaped like 'chorus bench --json' over shm: 2 ranks, all-reduce ring, alpha 2 us per
        // message (2 sequential messages), bus bandwidth 5 GB/s.
        let bench = temporaryPath("bench.json"), calibration = temporaryPath("calibration.yaml")
        defer {
            try? FileManager.default.removeItem(atPath: bench)
            try? FileManager.default.removeItem(atPath: calibration)
        }
        var text = ""
        for bytes in [1024, 65536, 1 << 20, 16 << 20, 64 << 20] {
            let time = 2 * 2.0 + Double(bytes) / 5e9 * 1e6
            for placement in ["out-of-place", "in-place"] {
                text += "{\"collective\":\"all-reduce\",\"algorithm\":\"ring\",\"transport\":\"shm\",\"ranks\":2,\"bytes\":\(bytes),\"count\":\(bytes / 4),\"dtype\":\"float\",\"op\":\"sum\",\"placement\":\"\(placement)\",\"time_us\":\(time),\"algbw_gbps\":1,\"busbw_gbps\":1,\"wrong\":0}\n"
            }
        }
        try text.write(toFile: bench, atomically: true, encoding: .utf8)
        let fit = try runChorus(["sim", "--calibrate", bench, "--output", calibration])
        #expect(fit.status == 0, "\(fit.stderr)")
        let written = try String(contentsOfFile: calibration, encoding: .utf8)
        #expect(written.contains("shm: { alpha: 2us, bandwidth: 5GB/s }"), "\(written)")
        let sim = try runChorus(["sim", "--topology", "localhost", "--algo", "ring", "-b", "64M", "-e", "64M", "--calibration", calibration, "--json"])
        #expect(sim.status == 0, "\(sim.stderr)")
        let busbw = try #require((lines(sim.stdout).first?["busbw_gbps"] as? NSNumber)?.doubleValue)
        #expect(busbw > 4.5 && busbw <= 5.0, "calibrated busbw \(busbw)")
        let plan = try runChorus(["plan", "--topology", "localhost", "--size", "64M", "--calibration", calibration])
        #expect(plan.status == 0 && plan.stdout.contains("calibration"))
    }

    @Test func badInputIsNamed() throws {
        let cases: [([String], Int32, String)] = [
            (["sim", "--topology", "no-such-topology"], 1, "no-such-topology"),
            (["sim", "-b", "1M", "-e", "1K"], 64, "is larger than -e"),
            (["sim", "--collective", "all-reduse"], 64, "--collective all-reduse"),
            (["sim", "--algo", "rng"], 64, "unknown algorithm 'rng'"),
            (["sim", "--schedule", "/nonexistent/s.json"], 1, "no such file"),
            (["sim", "--schedule", "x.json", "--algo", "ring"], 64, "either --schedule or --algo"),
            (["sim", "--channels", "2"], 64, "--channels and --slice shape a --schedule plan"),
            (["sim", "-d", "float17"], 64, "-d float17"),
            (["sim", "--topology", "localhost", "--collective", "broadcast", "-r", "5"], 64, "-r 5 is not one of the 2 ranks"),
            (["sim", "--calibrate", "/nonexistent/bench.json"], 1, "no such file"),
        ]
        for (args, status, message) in cases {
            let r = try runChorus(args)
            #expect(r.status == status, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        let notBench = temporaryPath("not-bench.json")
        defer { try? FileManager.default.removeItem(atPath: notBench) }
        try "{\"collective\":\"all-reduce\",\"transport\":\"sim\",\"ranks\":2,\"bytes\":8,\"time_us\":1,\"placement\":\"out-of-place\"}\nnot json\n".write(toFile: notBench, atomically: true, encoding: .utf8)
        let r = try runChorus(["sim", "--calibrate", notBench])
        #expect(r.status == 1)
        #expect(r.stderr.contains("not-bench.json:1: a simulated row"))
        #expect(r.stderr.contains("not-bench.json:2: not a JSON object"))
    }

    @Test func aClusterRingTooLargeToSimulateInFullIsRefusedWithTheReason() throws {
        // A ring's hops between instances pay more than those inside one, so its images do not
        // run in lockstep, and all 65,536 ranks are too many to simulate one by one.
        let r = try runChorus(["sim", "--topology", "aws-trn2-cluster-4096", "-b", "1G", "-e", "1G", "--algo", "ring"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("would not run in lockstep"), "\(r.stderr)")
        #expect(r.stderr.contains("more than the 200000000 a full event simulation takes on"), "\(r.stderr)")
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["CHORUS_LONG_TESTS"].map { $0 != "0" && !$0.isEmpty } ?? false))
    func theWholeClusterIsSimulatedThroughItsSymmetry() throws {
        let r = try runChorus(["sim", "--topology", "aws-trn2-cluster-4096", "-b", "1G", "-e", "1G", "--verbose", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("1 representative rank for 65536"), "\(r.stderr)")
        #expect(r.stdout.contains("\"ranks\":65536"))
    }
}
